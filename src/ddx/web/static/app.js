// ddx serve: the little script the pages need. No framework, no build step.
"use strict";

// Copy buttons: the command text is in data-copy (set by the server, escaped).
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  var area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  return Promise.resolve();
}

document.addEventListener("click", function (ev) {
  var button = ev.target.closest && ev.target.closest("button.copy");
  if (!button) return;
  copyText(button.getAttribute("data-copy") || "").then(function () {
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  });
});

// Search on the knowledge-base page: hide the rows that do not contain the words.
document.addEventListener("input", function (ev) {
  var box = ev.target;
  if (!box.matches || !box.matches("input[data-filter]")) return;
  var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
  document.querySelectorAll(box.getAttribute("data-filter")).forEach(function (row) {
    var text = row.textContent.toLowerCase();
    row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
  });
});

// The incident page: when a new diagnosis or event arrives, swap the content in place.
function watchIncident(live) {
  var id = live.getAttribute("data-incident");
  var seen = live.getAttribute("data-updated");
  function poll() {
    fetch("/api/v1/incidents/" + encodeURIComponent(id), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || data.incident.updated_at === seen) return null;
        seen = data.incident.updated_at;
        return fetch(location.pathname + "?fragment=1", {credentials: "same-origin"}).then(function (r) { return r.text(); });
      })
      .then(function (html) {
        if (html) { live.innerHTML = html; live.setAttribute("data-updated", seen); }
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 3000);
}

// Diagnose now: post, then show the result as it arrives.
function diagnoseForm(form) {
  var out = document.getElementById("result");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var targets = form.targets.value.split(/\n/).map(function (s) { return s.trim(); }).filter(Boolean);
    out.textContent = "Diagnosing… (a few seconds)";
    form.querySelector("button").disabled = true;
    fetch("/api/v1/diagnose", {method: "POST", credentials: "same-origin",
                               headers: {"Content-Type": "application/json"},
                               body: JSON.stringify({targets: targets})})
      .then(function (r) {
        var incident = r.headers.get("X-DDX-Incident");
        return r.json().then(function (data) { return {ok: r.ok, data: data, incident: incident}; });
      })
      .then(function (res) {
        out.textContent = "";
        if (!res.ok) { out.textContent = res.data.error || "The diagnosis failed."; return; }
        var h2 = document.createElement("h2");
        h2.textContent = res.data.status === "nothing_wrong" ? "Nothing looks wrong" : "Most likely causes";
        out.appendChild(h2);
        var list = document.createElement("ol");
        (res.data.hypotheses || []).slice(0, 5).forEach(function (h) {
          var li = document.createElement("li");
          li.textContent = h.name + " " + Math.round(h.probability * 100) + "%";
          list.appendChild(li);
        });
        out.appendChild(list);
        if (res.incident) {
          var a = document.createElement("a");
          a.href = "/incidents/" + encodeURIComponent(res.incident);
          a.textContent = "Evidence, next checks and the rest";
          out.appendChild(a);
        }
      })
      .catch(function () { out.textContent = "The diagnosis failed: no answer from ddx serve."; })
      .then(function () { form.querySelector("button").disabled = false; });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (live) watchIncident(live);
  var form = document.getElementById("diagnose");
  if (form) diagnoseForm(form);
});
