// The app's wallet component. Two modes, one per instance:
//  - "connect" (sidebar): connects the browser's EIP-1193 wallet (window.ethereum) and reports
//    {address, chainId} whenever the account or the chain changes;
//  - "send": hands a transaction the app prepared (and simulated) to the wallet with
//    eth_sendTransaction and reports {id, hash}, or {id, error, code} if it was not sent.
// The key never leaves the wallet: the app server only ever sees addresses and hashes.
import { Streamlit } from "streamlit-component-lib";
import { findProvider, describeError, sendOnce } from "./eip1193.js";

const root = document.getElementById("root");
let lastReported = null;
let subscribed = null;
const view = { address: null, chainId: null, error: null, busy: false };

function report(value) {
  const text = JSON.stringify(value);
  if (text === lastReported) return; // every report reruns the app: only changes count
  lastReported = text;
  Streamlit.setComponentValue(value);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== false && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function show(...lines) {
  root.replaceChildren(...lines);
  Streamlit.setFrameHeight();
}

function short(address) {
  return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : "";
}

// ── connect ──────────────────────────────────────────────────────────────────

async function refresh(provider) {
  try {
    const [accounts, chainHex] = await Promise.all([
      provider.request({ method: "eth_accounts" }),
      provider.request({ method: "eth_chainId" }),
    ]);
    view.address = accounts[0] ?? null;
    view.chainId = parseInt(chainHex, 16);
    view.error = null;
  } catch (err) {
    view.error = describeError(err);
  }
  report({ address: view.address, chainId: view.chainId, error: view.error });
}

async function ask(provider, method, params) {
  view.busy = true;
  drawConnect(provider, current);
  try {
    await provider.request(params ? { method, params } : { method });
    view.error = null;
  } catch (err) {
    view.error = describeError(err);
  }
  view.busy = false;
  await refresh(provider);
  drawConnect(provider, current);
}

function drawConnect(provider, args) {
  const expected = args.chainId;
  if (!provider) {
    show(
      el("div", { class: "line" }, "No wallet in this browser."),
      el("div", { class: "line muted" }, "Install MetaMask or another EIP-1193 wallet, then reload."),
    );
    return;
  }
  const lines = [];
  if (!view.address) {
    lines.push(
      el(
        "button",
        { id: "connect", disabled: view.busy, onclick: () => ask(provider, "eth_requestAccounts") },
        view.busy ? "Waiting for the wallet…" : "Connect wallet",
      ),
    );
  } else {
    lines.push(el("div", { class: "line" }, "Connected ", el("code", {}, short(view.address))));
    if (expected && view.chainId !== expected) {
      lines.push(
        el("div", { class: "line error" }, `The wallet is on chain ${view.chainId}; this app uses chain ${expected}.`),
        el(
          "button",
          {
            id: "switch",
            disabled: view.busy,
            onclick: () =>
              ask(provider, "wallet_switchEthereumChain", [{ chainId: `0x${expected.toString(16)}` }]),
          },
          `Switch to chain ${expected}`,
        ),
      );
    }
  }
  if (view.error) lines.push(el("div", { class: "line error" }, view.error));
  show(...lines);
}

// ── send ─────────────────────────────────────────────────────────────────────

const sent = {}; // request id -> {hash} | {error}

async function send(provider, args) {
  const request = args.request;
  const outcome = await sendOnce(provider, request, args.chainId);
  if (outcome === null) return; // this tab already handed that request to the wallet
  sent[request.id] = outcome;
  drawSend(provider, args);
  report({ id: request.id, ...outcome });
}

function drawSend(provider, args) {
  const request = args.request;
  if (!provider) {
    show(el("div", { class: "line error" }, "No wallet in this browser."));
    return;
  }
  if (!request) {
    show(el("div", { class: "line muted" }, args.label || ""));
    return;
  }
  const outcome = sent[request.id];
  const label = el("div", { class: "line" }, args.label || "Transaction");
  if (!outcome) show(label, el("div", { class: "line muted" }, "Confirm it in your wallet…"));
  else if (outcome.hash) show(label, el("div", { class: "line muted" }, "Sent ", el("code", {}, outcome.hash)));
  else show(label, el("div", { class: "line error" }, outcome.error));
}

// ── wiring ───────────────────────────────────────────────────────────────────

let current = {};

function onRender(event) {
  const { args, theme } = event.detail;
  current = args;
  if (theme) {
    document.documentElement.style.setProperty("--text", theme.textColor);
    document.documentElement.style.setProperty("--primary", theme.primaryColor);
    if (theme.font) document.documentElement.style.setProperty("--font", theme.font);
  }
  const provider = findProvider();
  if (args.mode === "send") {
    drawSend(provider, args);
    if (provider && args.request && !sent[args.request.id]) send(provider, args);
    return;
  }
  drawConnect(provider, args);
  if (provider && subscribed !== provider) {
    subscribed = provider;
    const again = () => refresh(provider).then(() => drawConnect(provider, current));
    provider.on?.("accountsChanged", again);
    provider.on?.("chainChanged", again);
    again();
  }
}

Streamlit.events.addEventListener(Streamlit.RENDER_EVENT, onRender);
Streamlit.setComponentReady();
Streamlit.setFrameHeight();
