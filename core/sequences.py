"""Follow-up sequences: the steps per priority that managers edit, and the business's send window."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import app_settings, audit, message_copy
from core.errors import FieldError, NotFound, ValidationFailed
from db.models import Channel, CopyMode, FollowUp, FollowUpStatus, Priority, SequenceStep, utcnow

SEND_WINDOW = "send_window"
MAX_DELAY_MINUTES = 60 * 24 * 90
MAX_STEPS = 12
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class SendWindow(BaseModel):
    """When messages may go out, in the business's time zone: which weekdays (0 = Monday) and hours."""

    days: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1)
    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _sane(self) -> SendWindow:
        if any(d not in range(7) for d in self.days):
            raise ValueError("days must be weekday numbers from 0 (Monday) to 6 (Sunday)")
        if self.start >= self.end:
            raise ValueError("the window must end after it starts")
        self.days = sorted(set(self.days))
        return self

    def is_open(self, moment: datetime, timezone: str) -> bool:
        """True when `moment` falls inside the window."""
        local = moment.astimezone(ZoneInfo(timezone))
        return local.weekday() in self.days and self.start <= local.time().replace(tzinfo=None) < self.end

    def next_open(self, moment: datetime, timezone: str) -> datetime:
        """The first instant at or after `moment` when the window is open."""
        if self.is_open(moment, timezone):
            return moment
        zone = ZoneInfo(timezone)
        local = moment.astimezone(zone)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            opens = datetime.combine(day, self.start, tzinfo=zone)
            if day.weekday() in self.days and opens >= local:
                return opens
        raise AssertionError("a window with at least one day opens within a week")

    def describe(self) -> str:
        """e.g. 'Mon-Fri 09:00-18:00'."""
        days = self.days
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            names = f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]}"
        else:
            names = ", ".join(DAY_NAMES[d] for d in days)
        return f"{names} {self.start:%H:%M}-{self.end:%H:%M}"


def get_send_window(*, session: Session) -> SendWindow:
    """The send window (weekdays 09:00-18:00 until a manager changes it)."""
    return SendWindow.model_validate(app_settings.get_value(session=session, key=SEND_WINDOW) or {})


def set_send_window(*, session: Session, days: list[int], start: time, end: time, actor: str) -> SendWindow:
    """Saves the send window; raises ValidationFailed naming the field."""
    try:
        window = SendWindow(days=days, start=start, end=end)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        field = "days" if "day" in message else "end"
        raise ValidationFailed([FieldError(field, message)]) from None
    app_settings.set_value(session=session, key=SEND_WINDOW, value=window.model_dump(mode="json"), actor=actor)
    return window


class StepIn(BaseModel):
    """A step as a manager enters it."""

    delay_minutes: int = Field(ge=0, le=MAX_DELAY_MINUTES)
    channel: Channel
    copy_mode: CopyMode = CopyMode.TEMPLATE
    subject_template: str | None = None
    body_template: str
    enabled: bool = True


def get_steps(*, session: Session, priority: Priority, include_disabled: bool = True) -> list[SequenceStep]:
    """The live (not archived) steps of a priority's sequence, in order."""
    stmt = select(SequenceStep).where(SequenceStep.priority == priority, SequenceStep.archived_at.is_(None))
    if not include_disabled:
        stmt = stmt.where(SequenceStep.enabled.is_(True))
    return list(session.scalars(stmt.order_by(SequenceStep.position, SequenceStep.created_at)))


def get_step(*, session: Session, step_id: str) -> SequenceStep:
    """One step; raises NotFound."""
    step = session.get(SequenceStep, step_id)
    if step is None or step.archived_at is not None:
        raise NotFound(f"no sequence step with id {step_id}")
    return step


def _checked(step_in: StepIn) -> StepIn:
    if step_in.channel == Channel.CALL and step_in.copy_mode == CopyMode.AI:
        raise ValidationFailed([FieldError("copy_mode", "a call is a task for a person: use a template")])
    message_copy.check_templates(channel=step_in.channel, subject=step_in.subject_template,
                                 body=step_in.body_template)
    if step_in.channel != Channel.EMAIL:
        step_in = step_in.model_copy(update={"subject_template": None})
    return step_in


def add_step(*, session: Session, priority: Priority, step_in: StepIn, actor: str) -> SequenceStep:
    """Appends a step to a priority's sequence; leads planned before keep their plan."""
    step_in = _checked(step_in)
    live = get_steps(session=session, priority=priority)
    if len(live) >= MAX_STEPS:
        raise ValidationFailed([FieldError("steps", f"a sequence has at most {MAX_STEPS} steps")])
    position = (session.scalar(select(func.max(SequenceStep.position)).where(SequenceStep.priority == priority))
                or 0) + 1
    step = SequenceStep(priority=priority, position=position, **step_in.model_dump())
    session.add(step)
    session.flush()
    audit.record(session=session, actor=actor, action="sequence.step_added", target_type="sequence_step",
                 target_id=step.id, detail={"priority": priority.value, "channel": step.channel.value})
    return step


def update_step(*, session: Session, step_id: str, step_in: StepIn, actor: str) -> SequenceStep:
    """Changes a step; follow-ups not yet sent use the new copy, and a new delay moves their due time."""
    step = get_step(session=session, step_id=step_id)
    step_in = _checked(step_in)
    old_delay = step.delay_minutes
    for name, value in step_in.model_dump().items():
        setattr(step, name, value)
    if step_in.delay_minutes != old_delay:
        shift = timedelta(minutes=step_in.delay_minutes - old_delay)
        for follow_up in session.scalars(select(FollowUp).where(FollowUp.step_id == step.id,
                                                                FollowUp.status == FollowUpStatus.SCHEDULED,
                                                                FollowUp.attempts == 0)):
            follow_up.due_at = follow_up.due_at + shift
    if not step_in.enabled:
        _cancel_for_step(session, step.id, "the step was switched off")
    audit.record(session=session, actor=actor, action="sequence.step_changed", target_type="sequence_step",
                 target_id=step.id)
    session.flush()
    return step


def archive_step(*, session: Session, step_id: str, actor: str) -> None:
    """Removes a step from its sequence; its pending follow-ups are cancelled, sent ones keep their history."""
    step = get_step(session=session, step_id=step_id)
    step.archived_at = utcnow()
    _cancel_for_step(session, step.id, "the step was removed from the sequence")
    audit.record(session=session, actor=actor, action="sequence.step_removed", target_type="sequence_step",
                 target_id=step.id)
    session.flush()


def move_step(*, session: Session, step_id: str, direction: int, actor: str) -> None:
    """Swaps a step with its neighbour (direction -1 up, +1 down)."""
    step = get_step(session=session, step_id=step_id)
    steps = get_steps(session=session, priority=step.priority)
    index = next(i for i, s in enumerate(steps) if s.id == step.id)
    other = index + direction
    if not 0 <= other < len(steps):
        return
    steps[index].position, steps[other].position = steps[other].position, steps[index].position
    audit.record(session=session, actor=actor, action="sequence.step_moved", target_type="sequence_step",
                 target_id=step.id)
    session.flush()


def _cancel_for_step(session: Session, step_id: str, reason: str) -> None:
    session.execute(update(FollowUp).where(FollowUp.step_id == step_id,
                                           FollowUp.status.in_([FollowUpStatus.SCHEDULED, FollowUpStatus.TASK]))
                    .values(status=FollowUpStatus.CANCELLED, cancel_reason=reason, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
