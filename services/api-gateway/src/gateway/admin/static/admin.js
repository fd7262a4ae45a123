// Admin UI: light progressive enhancement. Every page works without this script; with it,
// live sections refresh in place, destructive forms ask first, filters apply on change.
(function () {
  "use strict";

  // Sections with data-live-url are re-fetched every data-live-interval ms and replaced by
  // the server's fragment, until the fragment says it is final or the session has ended.
  // When one becomes final (a mailing finished), the others are refreshed at once.
  var refreshers = [];

  function poll(section) {
    var url = section.getAttribute("data-live-url");
    var every = parseInt(section.getAttribute("data-live-interval"), 10) || 2000;
    var timer = null;

    function isFinal() {
      return section.querySelector('[data-final="true"]') !== null;
    }

    function schedule() {
      if (!isFinal()) {
        timer = window.setTimeout(tick, every);
      }
    }

    function tick() {
      timer = null;
      if (document.hidden) {
        return; // resumed by visibilitychange
      }
      fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Admin-Live": "1" },
      })
        .then(function (response) {
          if (response.status === 401) {
            section.insertAdjacentHTML(
              "afterbegin",
              '<div class="alert alert-warn">Your session has ended. ' +
                '<a href="/admin/login">Log in again</a> to see live progress.</div>'
            );
            return null;
          }
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (html === null) {
            return;
          }
          var wasFinal = isFinal();
          section.innerHTML = html;
          section.classList.remove("stale");
          if (!wasFinal && isFinal()) {
            refreshers.forEach(function (other) {
              if (other.section !== section) {
                other.refresh();
              }
            });
          }
          schedule();
        })
        .catch(function () {
          section.classList.add("stale"); // keep the last figures, try again later
          schedule();
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && timer === null) {
        tick();
      }
    });
    refreshers.push({
      section: section,
      refresh: function () {
        if (timer !== null) {
          window.clearTimeout(timer);
        }
        tick();
      },
    });
    schedule();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.requestSubmit();
    }
  });

  // Forms with data-preview-url post themselves there as they are edited (debounced; only
  // the latest answer is shown) and show the returned fragment in data-preview-target.
  function preview(form) {
    var target = document.getElementById(form.getAttribute("data-preview-target"));
    var url = form.getAttribute("data-preview-url");
    var timer = null;
    var asked = 0;

    function ask() {
      timer = null;
      var mine = ++asked;
      fetch(url, { method: "POST", credentials: "same-origin", body: new FormData(form) })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (mine === asked) {
            target.innerHTML = html;
            target.classList.remove("stale");
          }
        })
        .catch(function () {
          target.classList.add("stale");
        });
    }

    function later() {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      timer = window.setTimeout(ask, 400);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    ask();
  }

  document.querySelectorAll("[data-live-url]").forEach(poll);
  document.querySelectorAll("form[data-preview-url]").forEach(preview);
})();
