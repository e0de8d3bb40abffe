// A user with a browser wallet, in the real headless Chromium (chromium.mjs): connect the
// wallet, post a bounty, finalize it once its deadline has passed, withdraw the refund — the browser alone, the key never on the app server.
//
// The wallet is an EIP-1193 provider injected into every frame before the page's scripts run
// (as a wallet extension injects window.ethereum). It answers accounts and chain itself and
// forwards everything else to the test's local chain, whose node holds the account unlocked and
// signs eth_sendTransaction. Every request the wallet saw is reported, as JSON on stdout.
//
// node browser_wallet.mjs  (settings in BOUNTYTREE_BROWSER_TEST, a JSON object: url, rpc,
// account, validation, name, bounty, shots, frontend)
import path from "node:path";

import { launch, VIEWPORT } from "./chromium.mjs";

const cfg = JSON.parse(process.env.BOUNTYTREE_BROWSER_TEST);
const WAIT = 180_000;
const seen = []; // every wallet request: {method, params?, result?, error?}
let connected = false;
let rpcId = 0;

async function rpc(method, params) {
  const reply = await fetch(cfg.rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  return reply.json();
}

// The wallet's side of window.ethereum.request.
async function wallet(_source, { method, params }) {
  let reply;
  if (method === "eth_requestAccounts") {
    connected = true;
    reply = { result: [cfg.account] };
  } else if (method === "eth_accounts") {
    reply = { result: connected ? [cfg.account] : [] };
  } else if (method === "eth_sendTransaction" && !connected) {
    reply = { error: { code: 4100, message: "not authorised" } };
  } else {
    reply = await rpc(method, params ?? []);
  }
  if (method !== "eth_chainId" && method !== "eth_accounts") seen.push({ method, params, ...reply });
  return reply;
}

const PROVIDER = `(() => {
  const listeners = {};
  window.ethereum = {
    isBountytreeTestWallet: true,
    async request({ method, params }) {
      const reply = await window.__bountytreeWallet({ method, params });
      if (reply.error) {
        const error = new Error(reply.error.message);
        error.code = reply.error.code;
        throw error;
      }
      return reply.result;
    },
    on(event, listener) { (listeners[event] ||= []).push(listener); return this; },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] || []).filter((l) => l !== listener);
      return this;
    },
  };
})();`;

async function textAppears(page, text) {
  await page.getByText(text).first().waitFor({ timeout: WAIT });
}

async function go(page, title) {
  await page.getByTestId("stSidebarNav").getByText(title, { exact: true }).click();
  await page.getByRole("heading", { name: title, exact: true }).first().waitFor({ timeout: WAIT });
}

async function fill(page, label, value) {
  const input = page.getByLabel(label, { exact: true });
  await input.fill(String(value));
  await input.press("Enter");
}

async function main() {
  const browser = await launch(cfg.frontend);
  const out = { seen };
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.exposeBinding("__bountytreeWallet", wallet);
  await context.addInitScript(PROVIDER);
  const page = await context.newPage();
  try {
    await page.goto(cfg.url + "/", { timeout: WAIT });
    await textAppears(page, "Who am I");
    out.deploy_button = await page.getByText("Deploy", { exact: true }).count();

    // Who am I: the browser wallet; connect it.
    await page.getByTestId("stSidebar").getByTestId("stSelectbox").click();
    await page.getByRole("option", { name: "Browser wallet" }).click();
    const connect = page.frameLocator('iframe[title="app.wallet.wallet"]').getByRole("button", { name: "Connect wallet" });
    await connect.click({ timeout: WAIT });
    await textAppears(page, cfg.account);
    await textAppears(page, "Balance");
    out.sidebar = await page.getByTestId("stSidebar").innerText();

    // Post a bounty.
    await go(page, "Post a bounty");
    await fill(page, "…or its path on this machine", cfg.validation);
    await textAppears(page, "never uploaded");
    await fill(page, "Name", cfg.name);
    await fill(page, "Bounty (ETH)", cfg.bounty);
    await fill(page, "Deadline (hours from now)", "0.05");
    await page.getByRole("button", { name: "Post bounty" }).click();
    await textAppears(page, "posted. Transaction");
    out.posted = await page.getByText("posted. Transaction").first().innerText();
    await page.screenshot({ path: path.join(cfg.shots, "posted.png") });
    const taskId = Number(out.posted.match(/Task (\d+) posted/)[1]);
    // A second click would escrow a second bounty: the button is off, and says why.
    out.post_again_disabled = await page.getByRole("button", { name: "Post bounty" }).isDisabled();
    out.post_again_reason = await page.getByText("posted with exactly these terms").first().innerText();

    // The deadline passes; the sponsor finalizes (nothing was proposed: the bounty comes back).
    for (const [method, params] of [["evm_increaseTime", [600]], ["evm_mine", []]]) await rpc(method, params);
    await go(page, "Task");
    await page.getByRole("button", { name: "Finalize" }).click();
    await textAppears(page, "Finalized: winner node");
    out.finalized = await page.getByText("Finalized: winner node").first().innerText();

    // Withdraw it.
    await go(page, "Wallet");
    await page.getByRole("button", { name: "Withdraw" }).click();
    await textAppears(page, "Withdrew");
    out.withdrew = await page.getByText("Withdrew").first().innerText();
    out.task_id = taskId;

    // Who and what stay put: another page opens on the task posted, and so does a reload. The
    // picker draws its label before its value: wait for the value the user chose (a wrong one
    // times out, and the text read then is reported).
    const taskBox = () => page.getByTestId("stSelectbox").filter({ hasText: /^Task/ }).first();
    const whoBox = () => page.getByTestId("stSidebar").getByTestId("stSelectbox").first();
    const picked = async (box) => {
      const input = box.locator("input").first();
      const typed = (await input.count()) ? await input.inputValue() : "";
      return `${await box.textContent()} ${typed}`;
    };
    const shows = async (key) => {
      await taskBox().waitFor({ timeout: WAIT });
      for (let i = 0; i < 60 && !(await picked(taskBox())).includes(`#${taskId} `); i++) {
        await page.waitForTimeout(1000);
      }
      out[key] = await picked(taskBox());
    };
    await page.getByTestId("stSidebarNav").getByText("Propose", { exact: true }).click();
    await textAppears(page, "Propose an architecture");
    await shows("task_on_propose");
    await page.reload();
    await textAppears(page, "Who am I");
    await shows("task_after_reload");
    out.who_after_reload = await picked(whoBox());
  } catch (error) {
    out.error = String(error);
    out.text = await page.locator("body").innerText().catch(() => "");
    await page.screenshot({ path: path.join(cfg.shots, "failed.png") }).catch(() => {});
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
}

main();
