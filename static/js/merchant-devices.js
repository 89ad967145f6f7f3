// The devices page while it shows a pairing code: ask every few seconds whether the code was
// used, and once a device is paired, put the fresh device list (rendered by the server, in the
// page's language) in place of the old one. Loaded only with a pairing code on the page.
const POLL_MS = 2000;
const panel = document.getElementById("pairing");

async function state() {
  const answer = await fetch(panel.dataset.stateUrl, {
    headers: { Accept: "application/json" },
    cache: "no-store",
    redirect: "error", // a lapsed login answers with a redirect: stop asking
  });
  if (!answer.ok) throw new Error(`pairing state: ${answer.status}`);
  return answer.json();
}

async function reloadList(deviceId) {
  const answer = await fetch("/merchant/devices", { headers: { Accept: "text/html" } });
  if (!answer.ok) return;
  const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
  const list = fresh.getElementById("device-list");
  if (list) document.getElementById("device-list").replaceWith(document.adoptNode(list));
  document.getElementById(`device-${deviceId}`)?.classList.add("just-paired");
}

function finish(noticeId) {
  // The code works once: once used (or expired) it is no use on the screen any more.
  panel.querySelector(".pairing")?.remove();
  document.getElementById(noticeId).hidden = false;
}

async function poll() {
  let found;
  try {
    found = await state();
  } catch {
    return; // offline or logged out: the page still works with a reload
  }
  if (found.state === "paired") {
    await reloadList(found.device_id);
    finish("pairing-done");
  } else if (found.state === "expired") {
    finish("pairing-expired");
  } else {
    setTimeout(poll, POLL_MS);
  }
}

if (panel?.dataset.stateUrl) setTimeout(poll, POLL_MS);
