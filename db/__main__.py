"""`python -m db upgrade | create-user | seed-demo | setup | import`: the database commands of the contract."""

from __future__ import annotations

import argparse
import getpass
import sys

from core import api_keys, users
from core.config import get_settings
from core.errors import FieldError, ValidationFailed
from db.migrate import upgrade
from db.models import Role
from db.session import get_engine, session_scope

DEMO_LEADS_ON_FIRST_START = 400


def cmd_upgrade(_args: argparse.Namespace) -> int:
    upgrade(get_settings().database_url)
    print("database is up to date")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise ValidationFailed([FieldError("password", "the two entries differ")])
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_create_user(args: argparse.Namespace) -> int:
    password = _read_password()
    with session_scope(get_engine()) as session:
        user = users.create(session=session, username=args.username, password=password, role=Role(args.role),
                            email=args.email, name=args.name)
        print(f"created {user.role.value} {user.username}")
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    with session_scope(get_engine()) as session:
        key, secret = api_keys.create(session=session, name=args.name, created_by="cli")
        print(f"API key '{key.name}' created. It is shown only this once:")
        print(secret)
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from core import demo

    def progress(done: int, total: int) -> None:
        print(f"\rseeding demo leads: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    created = demo.seed(engine=get_engine(), leads=args.leads, seed=args.seed, progress=progress)
    print(file=sys.stderr)
    print(f"created {created:,} demo leads")
    return 0


def cmd_setup(_args: argparse.Namespace) -> int:
    """Everything `make run` needs before starting: migrations, the first admin, demo data in an empty database."""
    from core import demo, webhooks

    settings = get_settings()
    upgrade(settings.database_url)
    with session_scope(get_engine()) as session:
        generated = users.ensure_first_admin(session=session, settings=settings)
        # WEBHOOK_URL becomes an endpoint row now, so the first leads' events are already queued for it.
        webhooks.sync_env_endpoint(session=session, settings=settings)
    if generated:
        print("=" * 64)
        print(f"  First admin created: user '{settings.leadops_admin_username}', password '{generated}'")
        print("  It is shown only this once: sign in and change it.")
        print("=" * 64)
    if demo.is_empty(engine=get_engine()):
        created = demo.seed(engine=get_engine(), leads=DEMO_LEADS_ON_FIRST_START, seed=7)
        print(f"empty database: added {created} demo leads")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Imports a CSV or Excel file of leads, with a mapping file or the mapping suggested from its headers."""
    import time
    from pathlib import Path

    from core import imports

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ValidationFailed([FieldError("file", f"cannot be read ({exc.strerror or exc})")]) from None
    table = imports.read_table(data, Path(args.file).name)
    if args.mapping:
        mapping, options = imports.load_mapping(args.mapping)
    else:
        mapping = imports.suggest_mapping(table.columns)
        options = imports.ImportOptions(key=imports.default_key(mapping))
    changes = {name: value for name, value in (("key", args.key), ("on_existing", args.on_existing)) if value}
    if args.follow_up:
        changes["follow_up"] = True
    options = imports.ImportOptions.of({**options.as_dict(), **changes})

    def progress(done: int, total: int) -> None:
        print(f"\rimporting {Path(args.file).name}: {done:,}/{total:,} rows", end="", file=sys.stderr, flush=True)

    started = time.monotonic()
    batch = imports.run(engine=get_engine(), settings=get_settings(), df=table, mapping=mapping, options=options,
                        filename=Path(args.file).name, actor=args.actor, progress=progress)
    print(file=sys.stderr)
    if batch.failed:
        with session_scope(get_engine()) as session:
            for line in imports.failed_rows(session=session, batch_id=batch.id, limit=10):
                print(f"row {line['import row']}: {line['import problem']}", file=sys.stderr)
    print(f"imported {batch.filename}: {batch.total_rows:,} rows, {batch.created:,} created, {batch.updated:,} "
          f"updated, {batch.skipped:,} skipped, {batch.failed:,} failed in {time.monotonic() - started:.1f} s "
          f"(import {batch.id})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description="LeadOps database commands")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade", help="apply the migrations to DATABASE_URL").set_defaults(fn=cmd_upgrade)
    create = sub.add_parser("create-user", help="create a user; the password is read from standard input")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--email")
    create.add_argument("--name")
    create.set_defaults(fn=cmd_create_user)
    key = sub.add_parser("create-api-key", help="create a bearer key for the HTTP API and print it once")
    key.add_argument("name", help="what the key is for, e.g. 'website form' or 'n8n'")
    key.set_defaults(fn=cmd_create_api_key)
    seed = sub.add_parser("seed-demo", help="add realistic synthetic leads")
    seed.add_argument("--leads", type=int, default=500)
    seed.add_argument("--seed", type=int, default=7)
    seed.set_defaults(fn=cmd_seed_demo)
    sub.add_parser("setup", help="migrations, first admin and demo data (what `make run` does first)"
                   ).set_defaults(fn=cmd_setup)
    load = sub.add_parser("import", help="import leads from a CSV or Excel file")
    load.add_argument("file", help="a .csv or .xlsx file; the first row holds the column names")
    load.add_argument("--mapping", help="a JSON mapping file (see bench/x_education_mapping.json); without it "
                                        "the mapping is suggested from the headers")
    load.add_argument("--key", choices=["email", "external_id"], help="the column that finds an existing lead")
    load.add_argument("--on-existing", choices=["create", "update", "skip"],
                      help="what a row whose key matches a lead does (default: skip)")
    load.add_argument("--follow-up", action="store_true",
                      help="plan the automatic follow-ups of new leads (off by default: imported leads are not "
                           "contacted)")
    load.add_argument("--actor", default="cli", help="who the timelines and the audit name (default: cli)")
    load.set_defaults(fn=cmd_import)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValidationFailed as exc:
        for error in exc.errors:
            print(f"error: {error.field} {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
