// Stripe Payment Element in setup mode: save a card or bank account for autopay. Details are typed into Stripe's
// own frames; the browser asks Stripe for a ConfirmationToken and only its id is posted to our server, which
// creates and confirms the SetupIntent there (with the mandate from the client's acceptance). Loaded only when
// Stripe keys are configured.
(() => {
  const form = document.getElementById("stripe-setup-form");
  const mount = document.getElementById("setup-element");
  if (!form || !mount || typeof Stripe === "undefined") return;
  const errors = document.getElementById("setup-element-errors");
  const button = document.getElementById("save-button");
  const tokenInput = form.querySelector("input[name=confirmation_token]");
  const stripe = Stripe(mount.dataset.publishableKey);
  const elements = stripe.elements({
    mode: "setup",
    currency: mount.dataset.currency,
    setupFutureUsage: "off_session",
    allowedPaymentMethodTypes: ["card", "us_bank_account"],
    paymentMethodCreation: "manual",
  });
  elements.create("payment").mount(mount);

  const fail = (message) => {
    errors.textContent = message || "Those details could not be used. Please check them.";
    button.disabled = false;
  };

  form.addEventListener("submit", async (event) => {
    if (tokenInput.value) return; // the token is ready: let the form post
    event.preventDefault();
    button.disabled = true;
    errors.textContent = "";
    const submitted = await elements.submit();
    if (submitted.error) return fail(submitted.error.message);
    const { error, confirmationToken } = await stripe.createConfirmationToken({
      elements,
      params: { return_url: mount.dataset.returnUrl },
    });
    if (error) return fail(error.message);
    tokenInput.value = confirmationToken.id;
    form.submit();
  });
})();
