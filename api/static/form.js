// The public lead form: posts JSON to the API, shows the server's field errors, then a thank-you state.
// Plain JavaScript, no framework; the server's answer is the truth, the browser's checks only a first pass.
(function () {
  "use strict";

  var FIELDS = ["full_name", "email", "phone", "company", "budget", "project_type", "message"];
  var HONEYPOT = "website";
  var TIMEOUT_MS = 60000;
  var MAX_WAIT_S = 300;

  var form = document.getElementById("lead-form");
  if (!form || !window.fetch) {
    return;
  }
  var formView = document.getElementById("form-view");
  var thanks = document.getElementById("thanks");
  var statusBox = document.getElementById("form-status");
  var button = form.querySelector("button[type=submit]");
  var buttonLabel = button.querySelector(".submit-label");
  var idleLabel = buttonLabel.textContent;

  var sending = false;
  var waitTimer = null;
  // One submission keeps one Idempotency-Key across its retries; changed content is a new submission.
  var idempotencyKey = null;
  var keyBody = null;

  // The page checks fields itself (and shows the messages inline), so the browser's bubbles stay off.
  form.noValidate = true;

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues does not.
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function control(name) {
    return form.elements.namedItem(name);
  }

  function errorBox(name) {
    return document.getElementById(name + "-error");
  }

  function setFieldError(input, text) {
    var box = errorBox(input.name);
    if (box) {
      box.textContent = text;
    }
    input.setAttribute("aria-invalid", "true");
  }

  function clearFieldError(input) {
    var box = errorBox(input.name);
    if (box) {
      box.textContent = "";
    }
    input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    FIELDS.forEach(function (name) {
      var input = control(name);
      if (input) {
        clearFieldError(input);
      }
    });
  }

  function showStatus(kind, text) {
    statusBox.textContent = "";
    if (!text) {
      return;
    }
    var p = document.createElement("p");
    p.className = "notice notice--" + kind;
    p.textContent = text;
    statusBox.appendChild(p);
  }

  function setSending(on) {
    sending = on;
    button.disabled = on;
    form.setAttribute("aria-busy", on ? "true" : "false");
    buttonLabel.textContent = on ? "Sending\u2026" : idleLabel;
  }

  function collect() {
    var body = {};
    FIELDS.concat([HONEYPOT]).forEach(function (name) {
      var input = control(name);
      body[name] = input ? input.value : "";
    });
    return body;
  }

  // The browser's first check: required, type=email, maxlength. Messages go next to each field.
  function checkLocally() {
    var first = null;
    FIELDS.forEach(function (name) {
      var input = control(name);
      if (!input) {
        return;
      }
      if (input.required && !input.value.trim()) {
        setFieldError(input, input.dataset.label + " is required.");
      } else if (!input.checkValidity()) {
        setFieldError(input, input.validationMessage);
      } else {
        return;
      }
      first = first || input;
    });
    return first;
  }

  // A 422 body: {"errors": [{"field": ..., "message": ...}]}. Field messages read "is required", "must be ...".
  function showServerErrors(errors) {
    var first = null;
    var general = [];
    errors.forEach(function (error) {
      var input = FIELDS.indexOf(error.field) >= 0 ? control(error.field) : null;
      if (input) {
        var box = errorBox(input.name);
        var text = input.dataset.label + " " + error.message;
        setFieldError(input, box && box.textContent ? box.textContent + " " + text : text);
        first = first || input;
      } else {
        general.push(error.message);
      }
    });
    if (first) {
      showStatus("error", "Please correct the highlighted " + (errors.length > 1 ? "fields" : "field") + ".");
      first.focus();
    } else {
      showStatus("error", "The form could not be sent: " + (general.join(" ") || "please check your details."));
    }
  }

  function waitBeforeRetry(seconds) {
    var wait = Math.min(Math.max(seconds, 1), MAX_WAIT_S);
    showStatus("error", "Too many enquiries were sent from your network just now. Please try again in " + wait +
      (wait === 1 ? " second." : " seconds.") + " Your details are still here.");
    button.disabled = true;
    window.clearTimeout(waitTimer);
    waitTimer = window.setTimeout(function () {
      button.disabled = false;
      showStatus("info", "You can send the form again now.");
    }, wait * 1000);
  }

  function showThanks() {
    formView.hidden = true;
    thanks.hidden = false;
    var heading = document.getElementById("thanks-title");
    heading.focus();
  }

  function post(body) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, TIMEOUT_MS) : null;
    return window.fetch(form.getAttribute("action"), {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": idempotencyKey},
      body: body,
      credentials: "same-origin",
      signal: controller ? controller.signal : undefined,
    }).finally(function () {
      window.clearTimeout(timer);
    });
  }

  function readJson(response) {
    return response.json().catch(function () { return null; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending) {
      return;
    }
    clearErrors();
    showStatus("info", "");
    var invalid = checkLocally();
    if (invalid) {
      showStatus("error", "Please correct the highlighted fields.");
      invalid.focus();
      return;
    }
    var body = JSON.stringify(collect());
    if (body !== keyBody) {
      idempotencyKey = newKey();
      keyBody = body;
    }
    setSending(true);
    showStatus("info", "Sending your enquiry\u2026");

    post(body).then(function (response) {
      return readJson(response).then(function (data) {
        setSending(false);
        if (response.status === 201) {
          showStatus("info", "");
          showThanks();
          return;
        }
        var errors = data && Array.isArray(data.errors) ? data.errors : [];
        if (response.status === 422 && errors.length) {
          showServerErrors(errors);
        } else if (response.status === 429) {
          waitBeforeRetry(parseInt(response.headers.get("Retry-After"), 10) || 60);
        } else if (response.status === 413) {
          showStatus("error", "Your enquiry is too long to send. Please shorten the message and try again.");
        } else if (response.status >= 500) {
          showStatus("error", "Something went wrong on our side (error " + response.status + "). " +
            "Please try again in a moment; your details are still here.");
        } else {
          showStatus("error", "The form could not be sent (error " + response.status + "). " +
            (errors.map(function (e) { return e.message; }).join(" ") || "Please try again."));
        }
      });
    }).catch(function () {
      setSending(false);
      showStatus("error", "We could not reach the server. Please check your connection and try again; " +
        "your details are still here.");
    });
  });

  // Typing in a field clears its error; the next submission checks it again.
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (input && input.getAttribute && input.getAttribute("aria-invalid") === "true") {
      clearFieldError(input);
    }
  });
})();
