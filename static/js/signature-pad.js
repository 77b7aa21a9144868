/* Signature pad: draw on a <canvas data-signature-pad data-target="hidden-input-id"> with a mouse, a finger or
   a pen. After every stroke the drawing is written into the hidden input as a PNG data URL, which the server
   validates and stores. Also shows only the signature section ("drawn" or "typed") the signer chose.
   No inline script or style anywhere: the Content-Security-Policy forbids them. */
(function () {
  "use strict";

  function setupPad(canvas) {
    var target = document.getElementById(canvas.getAttribute("data-target"));
    var clearButton = document.querySelector('[data-signature-clear="' + canvas.id + '"]');
    var ctx = canvas.getContext("2d");
    var drawing = false;
    var last = null;
    var hasInk = false;

    function styleStroke() {
      ctx.lineWidth = 2.4;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#1d2433";
      ctx.fillStyle = "#1d2433";
    }

    function fitToDisplay() {
      // Match the bitmap to the displayed size (and the screen's pixel density) so strokes land under the pointer.
      var rect = canvas.getBoundingClientRect();
      if (!rect.width || !rect.height) { return; }
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(rect.width * ratio);
      canvas.height = Math.round(rect.height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      styleStroke();
    }

    function point(event) {
      var rect = canvas.getBoundingClientRect();
      var source = event.touches && event.touches.length ? event.touches[0] : event;
      return { x: source.clientX - rect.left, y: source.clientY - rect.top };
    }

    function start(event) {
      if (event.button !== undefined && event.button > 0) { return; }
      event.preventDefault();
      drawing = true;
      last = point(event);
      ctx.beginPath();
      ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, Math.PI * 2);
      ctx.fill();
      hasInk = true;
      if (event.pointerId !== undefined && canvas.setPointerCapture) {
        try { canvas.setPointerCapture(event.pointerId); } catch (ignored) { /* pointer already released */ }
      }
    }

    function move(event) {
      if (!drawing) { return; }
      event.preventDefault();
      var next = point(event);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(next.x, next.y);
      ctx.stroke();
      last = next;
      hasInk = true;
    }

    function end() {
      if (!drawing) { return; }
      drawing = false;
      last = null;
      save();
    }

    function save() {
      if (target) { target.value = hasInk ? canvas.toDataURL("image/png") : ""; }
      canvas.classList.toggle("has-ink", hasInk);
    }

    function clear() {
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.restore();
      hasInk = false;
      save();
    }

    if (window.PointerEvent) {
      canvas.addEventListener("pointerdown", start);
      canvas.addEventListener("pointermove", move);
      canvas.addEventListener("pointerup", end);
      canvas.addEventListener("pointercancel", end);
      canvas.addEventListener("pointerleave", end);
    } else {
      canvas.addEventListener("mousedown", start);
      canvas.addEventListener("mousemove", move);
      window.addEventListener("mouseup", end);
      canvas.addEventListener("touchstart", start, { passive: false });
      canvas.addEventListener("touchmove", move, { passive: false });
      canvas.addEventListener("touchend", end);
      canvas.addEventListener("touchcancel", end);
    }
    if (clearButton) { clearButton.addEventListener("click", clear); }
    window.addEventListener("resize", function () {
      if (!hasInk) { fitToDisplay(); }  // resizing wipes a canvas: never do it under a drawn signature
    });
    fitToDisplay();
    return { refit: function () { if (!hasInk) { fitToDisplay(); } } };
  }

  function setupChoice(form, pads) {
    var radios = form.querySelectorAll("[data-signature-kind]");
    var sections = form.querySelectorAll("[data-signature-section]");
    if (!radios.length) { return; }
    function show() {
      var chosen = "";
      radios.forEach(function (radio) { if (radio.checked) { chosen = radio.getAttribute("data-signature-kind"); } });
      sections.forEach(function (section) {
        section.hidden = section.getAttribute("data-signature-section") !== chosen;
      });
      pads.forEach(function (pad) { pad.refit(); });  // a canvas that was hidden had no size to fit
    }
    radios.forEach(function (radio) { radio.addEventListener("change", show); });
    show();
  }

  function init() {
    var pads = [];
    document.querySelectorAll("canvas[data-signature-pad]").forEach(function (canvas) {
      pads.push(setupPad(canvas));
    });
    document.querySelectorAll("form").forEach(function (form) { setupChoice(form, pads); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
