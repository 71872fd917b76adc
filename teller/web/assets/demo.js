// The demo banking app: a stand-in for a bank's mobile app, served only in
// demo mode. Pick an account and an amount, get a QR and a numeric code, and
// watch the withdrawal move (reserved → claimed → paid → completed).
"use strict";

(function () {
  const S = window.SoftATM;
  const $ = (id) => document.getElementById(id);

  const pollEveryMs = 1000; // status refresh while the code is live
  const countdownTickMs = 1000;

  const ui = {
    error: $("error"), createView: $("create-view"), createForm: $("create-form"), account: $("account"), amount: $("amount"),
    create: $("create"), codeView: $("code-view"), codeAmount: $("code-amount"), status: $("status"), countdown: $("countdown"),
    qr: $("qr"), numericCode: $("numeric-code"), paidInfo: $("paid-info"), cancel: $("cancel"), newCode: $("new"),
  };

  const states = {
    requested: ["Đang gửi ngân hàng", "Asking the bank", "info"],
    reserved: ["Sẵn sàng rút", "Ready to collect", "info"],
    claimed: ["Quầy đang xử lý", "At the counter", "warn"],
    paid: ["Đã nhận tiền", "Cash paid", "ok"],
    completed: ["Hoàn tất", "Completed", "ok"],
    cancelled: ["Đã hủy", "Cancelled", "muted"],
    expired: ["Hết hạn", "Expired", "muted"],
    failed: ["Thất bại", "Failed", "bad"],
    declined: ["Bị từ chối", "Declined", "bad"],
  };
  const final = new Set(["completed", "cancelled", "expired", "failed", "declined"]);

  let current = null;
  let pollTimer = 0;
  let tickTimer = 0;

  const api = (method, url, json) => S.request(method, url, { json, noAuthHeaders: true });

  async function loadAccounts() {
    try {
      const r = await api("GET", "/demo/api/accounts");
      ui.account.replaceChildren(...(r.accounts || []).map((a) => {
        const o = S.el("option", a.bank + " · " + a.masked + " · " + a.holder);
        o.value = a.number;
        return o;
      }));
    } catch (err) {
      S.showError(ui.error, err.code);
    }
  }

  document.querySelectorAll("[data-amount]").forEach((b) => {
    b.addEventListener("click", () => { ui.amount.value = b.dataset.amount; });
  });

  ui.createForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    S.hideError(ui.error);
    const amount = parseInt(ui.amount.value, 10);
    if (!(amount > 0)) {
      S.showError(ui.error, "invalid_amount");
      return;
    }
    await S.busy(ui.create, async () => {
      try {
        const w = await api("POST", "/demo/api/withdrawals", { account: ui.account.value, amount });
        show(w);
      } catch (err) {
        S.showError(ui.error, err.code);
      }
    });
  });

  function show(w) {
    current = w;
    ui.codeAmount.textContent = S.money(w.amount);
    ui.qr.classList.remove("faded");
    // Same-origin PNG made by the switch; the payload itself never leaves
    // the image.
    ui.qr.src = w.qr_png;
    ui.numericCode.textContent = w.numeric_code || "";
    ui.paidInfo.hidden = true;
    ui.cancel.hidden = false;
    ui.cancel.disabled = false;
    ui.newCode.hidden = true;
    ui.createView.hidden = true;
    ui.codeView.hidden = false;
    render(w);
    stopTimers();
    pollTimer = setInterval(poll, pollEveryMs);
    tickTimer = setInterval(tick, countdownTickMs);
    tick();
  }

  function render(w) {
    const st = states[w.state] || [w.state, w.state, "info"];
    ui.status.textContent = st[0] + " · " + st[1];
    ui.status.className = "badge " + st[2];
    ui.status.dataset.state = w.state;
    if (w.state === "paid" || w.state === "completed") {
      ui.paidInfo.textContent = "Đã nhận tiền tại " + (w.post_office || "bưu điện") + " lúc " + S.when(w.paid_at) +
        " · Cash paid at " + (w.post_office || "the post office") + ".";
      ui.paidInfo.hidden = false;
    }
    const live = w.state === "reserved" || w.state === "claimed" || w.state === "requested";
    ui.cancel.hidden = !live;
    ui.newCode.hidden = live;
    if (!live) {
      ui.qr.classList.add("faded");
      ui.countdown.textContent = "";
    }
    if (final.has(w.state)) stopTimers();
  }

  async function poll() {
    if (!current) return;
    try {
      const w = await api("GET", "/demo/api/withdrawals/" + encodeURIComponent(current.id));
      current = Object.assign({}, current, w);
      render(current);
    } catch (err) {
      // A missed poll is retried on the next tick.
    }
  }

  function tick() {
    if (!current || !current.expires_at) return;
    if (!(current.state === "reserved" || current.state === "claimed")) return;
    const left = Date.parse(current.expires_at) - S.serverNow();
    if (left <= 0) { ui.countdown.textContent = "0:00"; return; }
    const s = Math.ceil(left / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const hms = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
    ui.countdown.textContent = "Còn hiệu lực · Valid for " + hms;
  }

  function stopTimers() {
    clearInterval(pollTimer);
    clearInterval(tickTimer);
    pollTimer = tickTimer = 0;
  }

  ui.cancel.addEventListener("click", async () => {
    if (!current) return;
    S.hideError(ui.error);
    await S.busy(ui.cancel, async () => {
      try {
        const w = await api("POST", "/demo/api/withdrawals/" + encodeURIComponent(current.id) + "/cancel");
        current = Object.assign({}, current, w);
        render(current);
      } catch (err) {
        S.showError(ui.error, err.code);
        poll();
      }
    });
  });

  ui.newCode.addEventListener("click", () => {
    stopTimers();
    current = null;
    S.hideError(ui.error);
    ui.codeView.hidden = true;
    ui.createView.hidden = false;
  });

  loadAccounts();
})();
