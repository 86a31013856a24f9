// dk2020flow: the little JavaScript the console has; every page works without it.
// Elements with data-confirm ask before their form is sent.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
