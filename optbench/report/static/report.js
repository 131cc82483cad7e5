window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img"), bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute("data-ok", ok ? "1" : "0");
    if (!ok) bad++;
  }
  document.body.setAttribute("data-figures", (imgs.length - bad) + "/" + imgs.length);
  if (bad) {
    var d = document.createElement("div");
    d.className = "warn";
    d.id = "figure-warning";
    d.textContent = bad + " of " + imgs.length + " figures failed to render in this browser.";
    document.body.insertBefore(d, document.body.firstChild);
  }
});
