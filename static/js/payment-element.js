// Stripe Payment Element glue. Card and bank details are typed into Stripe's own frames; the browser asks Stripe
// for a ConfirmationToken and only that token's id is posted to our server, which confirms the payment there
// (and may first show a card surcharge to accept), or saves it for autopay (data-mode="setup"). Loaded only when
// Stripe keys are configured.
(() => {
  const form = document.getElementById("stripe-pay-form");
  const mount = document.getElementById("payment-element");
  if (!form || !mount || typeof Stripe === "undefined") return;
  const errors = document.getElementById("payment-element-errors");
  const button = document.getElementById("pay-button");
  const tokenInput = form.querySelector("input[name=confirmation_token]");
  const stripe = Stripe(mount.dataset.publishableKey);
  // data-mode="setup": saving a card or bank account for autopay (a SetupIntent, nothing charged now)
  const setup = mount.dataset.mode === "setup";
  const elements = stripe.elements({
    ...(setup ? { mode: "setup", setupFutureUsage: "off_session" }
      : { mode: "payment", amount: Number(mount.dataset.amount) }),
    currency: mount.dataset.currency,
    // The same list the server sends as allowed_payment_method_types (ALLOWED_PAYMENT_METHOD_TYPES in
    // stripe_gateway.py). On the pinned API version (endive) Stripe.js refuses the old paymentMethodTypes option.
    allowedPaymentMethodTypes: ["card", "us_bank_account"],
    paymentMethodCreation: "manual",
  });
  elements.create("payment").mount(mount);

  const fail = (message) => {
    errors.textContent = message || "The payment details could not be used. Please check them.";
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

// Saving a card whose bank asks for 3-D Secure (templates/autopay/authenticate.html). Our server confirmed the
// SetupIntent with the ConfirmationToken and got requires_action; Stripe.js runs the bank's challenge
// (handleNextAction, the server-side-confirmation counterpart of confirmSetup's redirect: "if_required"), then the
// page posts the setup id back whatever the outcome: the server reads the SetupIntent from Stripe and saves the card
// only if it succeeded, so a failed or abandoned challenge ends with the server's message and nothing saved.
// A challenge that needs a full-page redirect comes back to the return URL given at confirmation instead.
(() => {
  const form = document.getElementById("stripe-setup-authentication");
  if (!form || typeof Stripe === "undefined" || !form.dataset.clientSecret) return;
  const status = document.getElementById("authentication-status");
  const button = document.getElementById("authentication-button");
  const stripe = Stripe(form.dataset.publishableKey);
  button.disabled = true;
  status.textContent = "Waiting for your bank's confirmation…";
  stripe.handleNextAction({ clientSecret: form.dataset.clientSecret })
    .catch(() => null) // a network error: the server still reads the setup's real state
    .finally(() => {
      status.textContent = "Checking with the payment processor…";
      form.submit();
    });
})();
