// LeadsRefer dashboard: progressive enhancement only. Every page works without this file; it
// adds copy buttons, the visitor's time zone, confirmations and "select all".
(function () {
  "use strict";
  // The browser's time zone, so that pages and reports show local days and times.
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var current = (document.cookie.match(/(?:^|; )tz=([^;]*)/) || [])[1];
  if (zone && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone) && decodeURIComponent(current || "") !== zone) {
    document.cookie = "tz=" + encodeURIComponent(zone) + "; Path=/; Max-Age=31536000; SameSite=Lax";
    if (!current && document.body.getAttribute("data-zone-sensitive") === "true") { location.reload(); }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    event.preventDefault();
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  document.addEventListener("change", function (event) {
    var all = event.target.closest("input[data-select-all]");
    if (!all) { return; }
    var boxes = document.querySelectorAll("input[name='" + all.getAttribute("data-select-all") + "']");
    for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
  });
  // Copy buttons are shown only where they can work.
  if (navigator.clipboard) {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) { buttons[i].hidden = false; }
  }
}());
