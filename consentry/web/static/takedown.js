/* The takedown form, with JavaScript: hash the chosen image on this device and send only
   the hashes (PDQ + MD5), like StopNCII. Without JavaScript the form still works: the
   image itself is sent and the server keeps only its hashes. */
(function () {
  "use strict";
  var form = document.getElementById("takedown-form");
  var input = document.getElementById("image");
  if (!form || !input || !window.ConsentryHashing || !window.Promise) return;
  var box = document.getElementById("device-hashing");
  var onDevice = document.getElementById("hash_on_device");
  var out = document.getElementById("hash-output");
  var pdqField = document.getElementById("pdq_hashes");
  var md5Field = document.getElementById("md5_hashes");
  var pending = null;
  box.hidden = false;

  function hashChosenFile() {
    var file = input.files && input.files[0];
    pending = null;
    if (!file) { out.textContent = "none yet"; return; }
    out.textContent = "working…";
    pending = window.ConsentryHashing.hashFile(file).then(function (h) {
      out.textContent = "PDQ " + h.pdq + " · MD5 " + h.md5;
      return h;
    }, function (err) {
      out.textContent = "this image could not be read here (" + err.message + ")";
      throw err;
    });
    pending.catch(function () {});  // reported above; submit decides what to do
  }

  input.addEventListener("change", hashChosenFile);
  form.addEventListener("submit", function (event) {
    var file = input.files && input.files[0];
    if (!file || !onDevice.checked) return;  // nothing to hash, or the person chose to send it
    event.preventDefault();
    if (!pending) hashChosenFile();
    pending.then(function (h) {
      // Like the server, drop a PDQ hash of a flat image (quality < 50): it would match
      // unrelated images. The MD5 still finds exact copies.
      pdqField.value = h.quality >= 50 ? h.pdq : "";
      md5Field.value = h.md5;
      input.value = "";  // the image never leaves this device
      input.disabled = true;
      HTMLFormElement.prototype.submit.call(form);  // immune to a control named "submit"
    }, function () {
      onDevice.focus();  // the message says why; they may untick and send the image
    });
  });
})();
