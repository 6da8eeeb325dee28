/* flagapp admin: the "turn off" links (the kill switch, on flag page cards and in the flag
 * list's columns) ask for the reason inline instead of opening the confirmation page.
 * "Turn on" links still open that page: it shows the blast radius first, as a flag-page
 * save does. Progressive enhancement only: without this script every link opens the page
 * (flagapp.admin.overview.toggle_view), which POSTs the same fields. No framework, no
 * inline script (CSP-friendly).
 *
 * The prompt's inputs belong (form="...") to a form appended to <body>: the links sit
 * inside the admin's own forms (change form, changelist actions), and forms cannot nest.
 */
(function () {
  "use strict";
  var counter = 0;

  function csrfToken() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (field) {
      return field.value;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function hidden(form, name, value) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }

  function close(box) {
    var form = document.getElementById(box.getAttribute("data-form"));
    if (form) {
      form.remove();
    }
    box.remove();
  }

  function open(link) {
    var existing = link.parentNode.querySelector(".flagapp-toggle-prompt");
    if (existing) {
      existing.querySelector("input[name=reason]").focus();
      return;
    }
    counter += 1;
    var id = "flagapp-toggle-form-" + counter;
    var form = document.createElement("form");
    form.id = id;
    form.method = "post";
    // The link goes to the confirmation page: POST its path, with its query's fields.
    var url = new URL(link.href, window.location.href);
    form.action = url.pathname;
    form.hidden = true;
    hidden(form, "csrfmiddlewaretoken", csrfToken());
    hidden(form, "enabled", url.searchParams.get("enabled") || "");
    hidden(form, "next", url.searchParams.get("next") || "");
    document.body.appendChild(form);

    var box = document.createElement("span");
    box.className = "flagapp-toggle-prompt";
    box.setAttribute("data-form", id);
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", link.getAttribute("title"));
    var reason = document.createElement("input");
    reason.type = "text";
    reason.name = "reason";
    reason.required = true;
    reason.maxLength = 2000;
    reason.placeholder = "Reason (required)";
    reason.setAttribute("form", id);
    reason.setAttribute("aria-label", link.getAttribute("title"));
    reason.className = "flagapp-toggle-reason";
    var submit = document.createElement("button");
    submit.type = "submit";
    submit.setAttribute("form", id);
    submit.className = "button flagapp-toggle-submit";
    submit.textContent = link.getAttribute("data-submit");
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button cancel-link";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", function () {
      close(box);
      link.focus();
    });
    reason.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.preventDefault();
        close(box);
        link.focus();
      }
    });
    box.appendChild(reason);
    box.appendChild(submit);
    box.appendChild(cancel);
    link.insertAdjacentElement("afterend", box);
    reason.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var link = target && target.closest ? target.closest("a.flagapp-toggle-off") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
      return;
    }
    event.preventDefault();
    open(link);
  });
})();
