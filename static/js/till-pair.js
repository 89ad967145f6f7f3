// /till/pair/{code}: redeem the one-time code, keep the device secret in this browser, go to the till.
import { DEVICE_STORE, REVOKED_STORE, T, fmt, problemText, readProblem } from "./till-text.js";

const section = document.getElementById("till-pair");
const stateLine = document.getElementById("till-pair-state");
const errorLine = document.getElementById("till-pair-error");

function fail(text) {
  stateLine.hidden = true;
  errorLine.textContent = text;
  errorLine.hidden = false;
  document.getElementById("till-pair-next").hidden = false;
}

async function pair() {
  let response;
  try {
    response = await fetch("/api/v1/till/pair", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ code: section.dataset.code }),
      cache: "no-store",
    });
  } catch {
    fail(T.server);
    return;
  }
  if (!response.ok) {
    fail(problemText(await readProblem(response)));
    return;
  }
  const paired = await response.json();
  localStorage.setItem(DEVICE_STORE, JSON.stringify(paired));
  localStorage.removeItem(REVOKED_STORE);
  stateLine.textContent = fmt(T.paired, paired.device.label, paired.merchant.name);
  stateLine.classList.add("ok");
  // The pairing URL is spent: replace it in the history, so Back never tries it again.
  setTimeout(() => location.replace("/till"), 400);
}

pair();
