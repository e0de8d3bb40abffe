// What the component needs from an EIP-1193 provider, and nothing more.

// Wallets inject window.ethereum into the page; Streamlit runs a component in a same-origin
// iframe, where a wallet may not inject it, so the parent page's provider is used too.
export function findProvider() {
  if (window.ethereum) return window.ethereum;
  try {
    return window.parent?.ethereum ?? null;
  } catch {
    return null; // a parent of another origin: no provider to borrow
  }
}

// One line for the app, from an EIP-1193 / JSON-RPC error.
export function describeError(err) {
  if (err?.code === 4001) return "declined in the wallet";
  if (err?.code === 4100) return "the wallet has not authorised this site: connect it first";
  if (err?.code === 4902) return "the wallet does not know this chain: add it in the wallet first";
  const text = err?.message ?? String(err);
  return text.split("\n")[0];
}

// A request id is handed to the wallet at most once per browser tab, even if the component is
// drawn again (every rerun) or its frame reloads: a transaction must never be sent twice.
function claim(id) {
  const key = `bountytree-wallet-sent:${id}`;
  try {
    if (window.sessionStorage.getItem(key)) return false;
    window.sessionStorage.setItem(key, "1");
  } catch {
    // no storage (a sandboxed frame): the component's own memory still guards a redraw
  }
  return true;
}

// Sends a prepared transaction ({from, to, data, value, gas}, hex quantities) after checking that
// the wallet is on the expected chain and on the account the app simulated it for. Returns
// {hash}, {error, code}, or null if this tab already sent that request.
export async function sendOnce(provider, request, expectedChainId) {
  if (!claim(request.id)) return null;
  try {
    const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
    if (expectedChainId && chainId !== expectedChainId) {
      return {
        error: `the wallet is on chain ${chainId}, not ${expectedChainId}: nothing was sent`,
        code: "wrong-chain",
      };
    }
    const accounts = (await provider.request({ method: "eth_accounts" })).map((a) => a.toLowerCase());
    if (!accounts.includes(request.tx.from.toLowerCase())) {
      return {
        error: `the wallet's account is no longer ${request.tx.from}: nothing was sent`,
        code: "wrong-account",
      };
    }
    const hash = await provider.request({ method: "eth_sendTransaction", params: [request.tx] });
    return { hash };
  } catch (err) {
    return { error: describeError(err), code: err?.code ?? null };
  }
}
