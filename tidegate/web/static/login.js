// Log in: POST the token as JSON (with the header the service requires of every POST);
// the service answers with a session cookie, and the dashboard opens.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Tidegate-Request": "1" },
      body: JSON.stringify({ token: document.getElementById("token").value }),
    });
    if (response.ok) {
      window.location.assign("/");
      return;
    }
    const answer = await response.json().catch(() => ({}));
    document.getElementById("login-error").textContent = answer.error || response.statusText;
  });
});
