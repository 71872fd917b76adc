// The teller's kiosk: log in, scan a code (camera or numeric fallback), check
// the citizen's ID, hand over the cash, confirm, print a receipt.
//
// Safety rules this page keeps:
//   - A scanned code is only ever sent as text to POST /v1/teller/scan. It is
//     never opened, never navigated to, never put into HTML.
//   - Confirm needs the ID-check box ticked, and the server checks it again.
//   - Each confirm of a given withdrawal carries ONE idempotency key, made
//     when the withdrawal is shown and reused on every retry, so a double
//     tap or a retry after a lost answer gets the first answer and never
//     pays twice.
//   - Cash in (a deposit code, or a walk-in by account number): the teller
//     confirms only after the citizen confirmed the name and the cash was
//     counted; the receipt comes only when the bank credited the deposit.
//     Any refusal of the confirm that means the bank did not credit it
//     (deposit_not_taken) puts up "hand the cash back" and ends the
//     deposit on this screen.
"use strict";

(function () {
  const S = window.SoftATM;
  const $ = (id) => document.getElementById(id);

  // Settings.
  const scanPayloadMax = 2048; // longest QR text we send; real codes are far shorter
  const scansPerSecondMax = 8; // decoder frame rate: enough to feel instant, light on an old PC
  const countdownTickMs = 250;
  const countdownLowMs = 60 * 1000; // red below one minute

  const ui = {
    error: $("error"), who: $("who"), whoName: $("who-name"), logout: $("logout"),
    loginView: $("login-view"), loginForm: $("login-form"), username: $("username"), password: $("password"), login: $("login"),
    workView: $("work-view"), scanView: $("scan-view"), camera: $("camera"), cameraStatus: $("camera-status"), scanAgain: $("scan-again"),
    numericForm: $("numeric-form"), numeric: $("numeric"), phone: $("phone-last4"), numericSubmit: $("numeric-submit"),
    numericTries: $("numeric-tries"),
    payoutView: $("payout-view"), amount: $("amount"), holder: $("holder"), bank: $("bank"), account: $("account"),
    countdown: $("countdown"), idChecked: $("id-checked"), confirm: $("confirm"), release: $("release"),
    receipt: $("receipt"), print: $("print"), next: $("next"),
    tillPO: $("till-po"), tillCount: $("till-count"), tillPaidOut: $("till-paid-out"), tillCash: $("till-cash"),
    tillPayouts: $("till-payouts"), tillRefresh: $("till-refresh"),
    modeOut: $("mode-out"), modeIn: $("mode-in"), walkin: $("walkin"), walkinForm: $("walkin-form"),
    walkinAccount: $("walkin-account"), walkinAmount: $("walkin-amount"), walkinSubmit: $("walkin-submit"),
    depositView: $("deposit-view"), depositAmount: $("deposit-amount"), depositHolder: $("deposit-holder"),
    depositBank: $("deposit-bank"), depositAccount: $("deposit-account"), depositCountdown: $("deposit-countdown"),
    depositIDRow: $("deposit-id-row"), depositIDNumber: $("deposit-id-number"), cashCounted: $("cash-counted"),
    depositConfirm: $("deposit-confirm"), depositRelease: $("deposit-release"), depositHandback: $("deposit-handback"),
    depositNext: $("deposit-next"),
  };

  let session = null;
  let scanner = null;
  let scanning = false;
  let scanBusy = false;
  // current is the withdrawal on screen: its scan answer and the keys of
  // the two actions the teller can take on it.
  let current = null;
  let countdownTimer = 0;
  // mode is which way the cash goes: "out" (withdrawals) or "in" (deposits).
  let mode = "out";

  function setMode(m) {
    mode = m;
    ui.modeOut.setAttribute("aria-pressed", String(m === "out"));
    ui.modeIn.setAttribute("aria-pressed", String(m === "in"));
    ui.walkin.hidden = m !== "in";
    document.body.dataset.mode = m;
  }

  // setStatus shows the scanner's state in words; data-state is for tests
  // and for the CSS that hides a stopped video.
  function setStatus(state, vi, en) {
    ui.cameraStatus.dataset.state = state;
    ui.cameraStatus.replaceChildren(document.createTextNode(vi + " "), S.el("span", "· " + en, "en"));
    if (state === "scanning") ui.camera.dataset.live = "1";
    else delete ui.camera.dataset.live;
  }

  function fail(err, override) {
    const code = err && err.code ? err.code : "internal";
    if (code === "unauthorized") {
      showLogin();
    }
    S.showError(ui.error, code, override);
  }

  // ---- login -------------------------------------------------------------

  function showLogin() {
    session = null;
    stopScanner();
    stopCountdown();
    current = null;
    ui.who.hidden = true;
    ui.workView.hidden = true;
    ui.loginView.hidden = false;
    ui.password.value = "";
    ui.username.focus();
  }

  function showWork(s) {
    session = s;
    ui.loginView.hidden = true;
    ui.workView.hidden = false;
    ui.who.hidden = false;
    ui.whoName.textContent = s.username + " · " + (s.post_office || "") + (s.kiosk ? " · " + s.kiosk : "");
    toScan();
    loadTill();
  }

  ui.loginForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    S.hideError(ui.error);
    await S.busy(ui.login, async () => {
      try {
        const s = await S.login(ui.username.value.trim(), ui.password.value);
        if (s.role !== "teller") {
          await S.logout();
          S.showError(ui.error, "forbidden", ["Trang này chỉ dành cho giao dịch viên.", "This page is for tellers only."]);
          return;
        }
        showWork(s);
      } catch (err) {
        if (err.code === "unauthorized") {
          S.showError(ui.error, err.code, ["Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."]);
          ui.password.select();
          ui.password.focus();
        } else {
          fail(err);
        }
      }
    });
  });

  ui.logout.addEventListener("click", async () => {
    await S.logout();
    S.hideError(ui.error);
    showLogin();
  });

  // ---- scanning ----------------------------------------------------------

  function stopScanner() {
    scanning = false;
    if (scanner) scanner.stop();
  }

  async function startScanner() {
    ui.scanAgain.hidden = true;
    setStatus("starting", "Đang mở camera…", "Starting the camera…");
    if (typeof QrScanner === "undefined") {
      setStatus("no-scanner", "Không tải được bộ quét.", "The scanner did not load.");
      return;
    }
    if (!scanner) {
      scanner = new QrScanner(ui.camera, (result) => onQR(result && result.data), {
        returnDetailedScanResult: true,
        maxScansPerSecond: scansPerSecondMax,
        preferredCamera: "environment",
        // Keep qr-scanner's default scan region (the centre two thirds): the
        // aiming square on screen shows it. "No QR code found" on a frame is
        // normal and not worth a log line.
        onDecodeError: (e) => { if (e !== QrScanner.NO_QR_CODE_FOUND && String(e).indexOf("No QR code found") < 0) console.warn("qr:", e); },
      });
    }
    try {
      scanning = true;
      await scanner.start();
      setStatus("scanning", "Đưa mã QR vào khung vàng.", "Hold the QR code inside the yellow square.");
    } catch (e) {
      scanning = false;
      setStatus("no-camera", "Không mở được camera. Hãy nhập mã số bên dưới.", "No camera. Type the numeric code below.");
    }
  }

  function onQR(text) {
    if (!scanning || scanBusy || !text) return;
    // Stop after a hit: one code, one request. The teller presses "Scan
    // again" to read another.
    stopScanner();
    if (text.length > scanPayloadMax) {
      S.showError(ui.error, "code_invalid");
      ui.scanAgain.hidden = false;
      return;
    }
    submitScan({ qr: text }, []);
  }

  ui.numericForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const numeric = ui.numeric.value.replace(/\D/g, "");
    const last4 = ui.phone.value.replace(/\D/g, "");
    if (numeric.length !== 12 || last4.length !== 4) {
      S.showError(ui.error, "invalid_request", ["Nhập đủ 12 số của mã và 4 số cuối điện thoại.",
        "Enter all 12 digits of the code and the last 4 digits of the phone."]);
      return;
    }
    stopScanner();
    submitScan({ numeric: numeric, phone_last4: last4 }, [ui.numericSubmit]);
  });

  // triesLeft reads how many numeric tries this counter has left from the
  // answer to a refused numeric entry: the server ends its message with
  // "(tries left: N)" (switch/payout.go triesLeftSuffix). NaN if absent.
  function triesLeft(err) {
    const m = /\(tries left: (\d+)\)$/.exec((err && err.serverMessage) || "");
    return m ? Number(m[1]) : NaN;
  }

  // showTries shows the numeric tries left under the numeric form; it stays
  // until the next numeric answer or the next customer.
  function showTries(n) {
    if (isNaN(n)) {
      ui.numericTries.hidden = true;
      ui.numericTries.replaceChildren();
      delete ui.numericTries.dataset.left;
      return;
    }
    const [vi, en] = n > 0
      ? ["Còn " + n + " lần nhập mã số tại quầy này.", n + (n === 1 ? " numeric try" : " numeric tries") + " left at this counter."]
      : ["Hết lượt nhập mã số tại quầy này. Hãy quét mã QR.", "No numeric tries left at this counter. Scan the QR code."];
    ui.numericTries.replaceChildren(document.createTextNode(vi + " "), S.el("span", "· " + en, "en"));
    ui.numericTries.dataset.left = String(n);
    ui.numericTries.classList.toggle("low", n <= 1);
    ui.numericTries.hidden = false;
  }

  async function submitScan(body, buttons) {
    S.hideError(ui.error);
    scanBusy = true;
    setStatus("checking", "Đang kiểm tra mã…", "Checking the code…");
    try {
      // A scan claims the code for this counter; its key is per attempt.
      const d = await S.busy(buttons, () => S.request("POST", "/v1/teller/scan", { json: body, key: S.newKey() }));
      if (body.numeric) showTries(NaN);
      showPayout(d);
    } catch (err) {
      fail(err);
      if (body.numeric) showTries(triesLeft(err));
      if (session) {
        ui.scanAgain.hidden = false;
        setStatus("refused", "Mã bị từ chối: xem thông báo ở trên.", "Code refused: see the message above.");
        // The next action: type the code again, or scan again.
        if (body.numeric) { ui.numeric.focus(); ui.numeric.select(); } else ui.scanAgain.focus();
      }
    } finally {
      scanBusy = false;
    }
  }

  ui.scanAgain.addEventListener("click", () => {
    S.hideError(ui.error);
    startScanner();
  });

  // ---- payout ------------------------------------------------------------

  function toScan() {
    stopCountdown();
    current = null;
    ui.depositView.hidden = true;
    ui.payoutView.hidden = true;
    ui.receipt.hidden = true;
    ui.scanView.hidden = false;
    ui.numeric.value = "";
    ui.phone.value = "";
    showTries(NaN);
    startScanner();
    // The camera reads on its own; the one thing to type, for a citizen
    // without the QR on screen, is the numeric code.
    ui.numeric.focus();
  }

  function showPayout(d) {
    if (d.kind === "deposit") return showDeposit(d);
    current = { scan: d, confirmKey: S.newKey(), releaseKey: S.newKey() };
    ui.amount.textContent = S.money(d.amount);
    // The full name (as the bank holds it) is what the ID card is checked
    // against; older codes have only the masked one.
    ui.holder.textContent = d.holder_name || d.holder_name_masked || "—";
    ui.bank.textContent = d.bank_name ? d.bank_name + " (" + d.bank + ")" : (d.bank || "—");
    ui.account.textContent = d.account_masked || "—";
    ui.idChecked.checked = false;
    ui.confirm.disabled = true;
    ui.release.disabled = false;
    ui.scanView.hidden = true;
    ui.receipt.hidden = true;
    ui.payoutView.hidden = false;
    startCountdown(d);
    ui.idChecked.focus();
  }

  // deadline is the earlier of the code's expiry and this counter's claim.
  function deadlineOf(d) {
    const times = [d.expires_at, d.claim_until].map((t) => (t ? Date.parse(t) : NaN)).filter((t) => t > 0);
    return times.length ? Math.min(...times) : NaN;
  }

  function startCountdown(d) {
    stopCountdown();
    const deadline = deadlineOf(d);
    const box = current && current.deposit ? ui.depositCountdown : ui.countdown;
    const button = current && current.deposit ? ui.depositConfirm : ui.confirm;
    const tick = () => {
      if (isNaN(deadline)) { box.textContent = "—"; return; }
      const left = deadline - S.serverNow();
      if (left <= 0) {
        box.textContent = "0:00";
        box.classList.add("low");
        button.disabled = true;
        stopCountdown();
        S.showError(ui.error, "code_expired", ["Hết thời gian cho mã này. Hãy hủy và quét lại.",
          "Time is up for this code. Cancel and scan it again."]);
        current.timedOut = true;
        return;
      }
      const s = Math.ceil(left / 1000);
      box.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      box.classList.toggle("low", left < countdownLowMs);
    };
    box.classList.remove("low");
    tick();
    countdownTimer = setInterval(tick, countdownTickMs);
  }

  function stopCountdown() {
    if (countdownTimer) clearInterval(countdownTimer);
    countdownTimer = 0;
  }

  ui.idChecked.addEventListener("change", () => {
    ui.confirm.disabled = !(ui.idChecked.checked && current && !current.timedOut);
  });

  // Errors after which the same confirm may be tried again with the same key.
  const retryable = new Set(["network", "internal", "unavailable", "request_in_progress", "bank_unavailable", "rate_limited",
    "database_unavailable", "deposit_outcome_unknown"]);

  ui.confirm.addEventListener("click", async () => {
    if (!current || !ui.idChecked.checked) return;
    S.hideError(ui.error);
    const c = current;
    let done = false;
    await S.busy([ui.confirm, ui.release, ui.idChecked], async () => {
      try {
        const rc = await S.request("POST", "/v1/teller/confirm", {
          json: { withdrawal_id: c.scan.withdrawal_id, id_checked: true }, key: c.confirmKey,
        });
        done = true;
        showReceipt(rc);
      } catch (err) {
        fail(err);
      }
    });
    // busy() has put the buttons back as they were; now set what stays.
    // After an error worth retrying, Confirm stays on and the retry reuses
    // c.confirmKey. After any other (already used, expired, till short...)
    // only Cancel remains.
    const retry = !done && current === c && !c.timedOut && retryable.has(ui.error.dataset.code || "");
    ui.confirm.disabled = !(retry && ui.idChecked.checked);
  });

  ui.release.addEventListener("click", async () => {
    if (!current) return toScan();
    S.hideError(ui.error);
    const c = current;
    await S.busy([ui.release, ui.confirm], async () => {
      try {
        await S.request("POST", "/v1/teller/release", { json: { withdrawal_id: c.scan.withdrawal_id }, key: c.releaseKey });
      } catch (err) {
        // The claim lapses on its own: tell the teller, but move on.
        fail(err);
      }
    });
    if (session) toScan();
  });

  // ---- cash in -----------------------------------------------------------

  ui.modeOut.addEventListener("click", () => { if (!current) { S.hideError(ui.error); setMode("out"); toScan(); } });
  ui.modeIn.addEventListener("click", () => {
    if (current) return;
    S.hideError(ui.error);
    setMode("in");
    toScan();
    ui.walkinAccount.focus();
  });

  ui.walkinForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const account = ui.walkinAccount.value.replace(/\s/g, "");
    const amount = Number(ui.walkinAmount.value.replace(/[.,\s]/g, ""));
    if (!/^\d{6,28}$/.test(account) || !(amount > 0)) {
      S.showError(ui.error, "invalid_request", ["Nhập số tài khoản (6–28 số) và số tiền nộp.",
        "Type the account number (6–28 digits) and the amount."]);
      return;
    }
    S.hideError(ui.error);
    stopScanner();
    try {
      const d = await S.busy([ui.walkinSubmit], () => S.request("POST", "/v1/teller/deposits/walkin",
        { json: { account: account, amount: amount }, key: S.newKey() }));
      showDeposit(d);
    } catch (err) {
      fail(err);
      ui.walkinAccount.focus();
    }
  });

  // showDeposit shows a deposit claimed by this counter: the name the bank
  // holds (for the citizen to confirm), the amount to count.
  function showDeposit(d) {
    setMode("in");
    current = { scan: d, deposit: true, confirmKey: S.newKey(), releaseKey: S.newKey() };
    ui.depositAmount.textContent = S.money(d.amount);
    ui.depositHolder.textContent = d.holder_name || d.holder_name_masked || "—";
    ui.depositBank.textContent = d.bank_name ? d.bank_name + " (" + d.bank + ")" : (d.bank || "—");
    ui.depositAccount.textContent = d.account_masked || "—";
    ui.depositIDRow.hidden = !d.id_required;
    ui.depositIDNumber.value = "";
    ui.cashCounted.checked = false;
    ui.depositConfirm.disabled = true;
    ui.depositConfirm.hidden = false;
    ui.depositRelease.disabled = false;
    ui.depositRelease.hidden = false;
    ui.depositHandback.hidden = true;
    ui.depositNext.hidden = true;
    ui.scanView.hidden = true;
    ui.payoutView.hidden = true;
    ui.receipt.hidden = true;
    ui.depositView.hidden = false;
    startCountdown(d);
    ui.cashCounted.focus();
  }

  ui.cashCounted.addEventListener("change", () => {
    ui.depositConfirm.disabled = !(ui.cashCounted.checked && current && current.deposit && !current.timedOut);
  });

  // handBack ends a deposit the bank did not credit: the cash goes back.
  function handBack() {
    stopCountdown();
    ui.depositConfirm.hidden = true;
    ui.depositRelease.hidden = true;
    ui.depositHandback.hidden = false;
    ui.depositNext.hidden = false;
    current = null;
    ui.depositNext.focus();
  }

  ui.depositConfirm.addEventListener("click", async () => {
    if (!current || !current.deposit || !ui.cashCounted.checked) return;
    S.hideError(ui.error);
    const c = current;
    let done = false;
    let code = "";
    await S.busy([ui.depositConfirm, ui.depositRelease, ui.cashCounted], async () => {
      try {
        const rc = await S.request("POST", "/v1/teller/deposits/confirm", {
          json: { deposit_id: c.scan.withdrawal_id, cash_counted: true, id_number: ui.depositIDNumber.value.trim() },
          key: c.confirmKey,
        });
        done = true;
        showReceipt(rc);
      } catch (err) {
        code = err && err.code;
        fail(err);
      }
    });
    if (done) return;
    if (code === "deposit_not_taken") return handBack();
    if (code === "id_number_required") {
      // Nothing was sent: type the ID number, confirm again (a new key:
      // the refused request is answered, a new body is a new request).
      c.confirmKey = S.newKey();
      ui.depositIDRow.hidden = false;
      ui.depositIDNumber.focus();
    }
    const retry = current === c && !c.timedOut && (retryable.has(code || "") || code === "id_number_required");
    ui.depositConfirm.disabled = !(retry && ui.cashCounted.checked);
  });

  ui.depositRelease.addEventListener("click", async () => {
    if (!current) return toScan();
    S.hideError(ui.error);
    const c = current;
    await S.busy([ui.depositRelease, ui.depositConfirm], async () => {
      try {
        await S.request("POST", "/v1/teller/deposits/release", { json: { deposit_id: c.scan.withdrawal_id }, key: c.releaseKey });
      } catch (err) {
        fail(err);
      }
    });
    if (session) toScan();
  });

  ui.depositNext.addEventListener("click", () => { S.hideError(ui.error); toScan(); });

  // ---- receipt -----------------------------------------------------------

  // kinds names how the cash went, on a receipt; titles and signs follow it.
  const kinds = { cash_out: ["Rút tiền mặt", "Cash out"], cash_in: ["Nạp tiền mặt vào tài khoản", "Cash in (deposit)"] };
  const titles = { cash_out: ["Biên nhận chi tiền", "Cash-out receipt"], cash_in: ["Biên nhận nạp tiền", "Cash-in receipt"] };
  const signs = { cash_out: ["Người nhận ký:", "Citizen's signature:"], cash_in: ["Người nộp ký:", "Depositor's signature:"] };

  // showReceipt shows a payout's receipt: just made (after Confirm), or a
  // reprint from "My day".
  function showReceipt(rc) {
    stopCountdown();
    stopScanner();
    current = null;
    const set = (id, text) => { $(id).textContent = text || "—"; };
    set("receipt-amount", S.money(rc.amount));
    set("receipt-words", rc.amount_words);
    set("receipt-no", rc.receipt_no);
    set("receipt-time", S.when(rc.paid_at));
    const kind = kinds[rc.kind] || [rc.kind || "—", rc.kind || "—"];
    $("receipt-kind").replaceChildren(S.bi(kind[0], kind[1]));
    const title = titles[rc.kind] || titles.cash_out;
    $("receipt-title").replaceChildren(document.createTextNode(title[0] + " "), S.el("span", "· " + title[1], "en"));
    const sign = signs[rc.kind] || signs.cash_out;
    $("receipt-sign").replaceChildren(S.el("span", sign[0], "vi"), S.el("span", sign[1], "en"), document.createTextNode(" ______________"));
    ui.receipt.dataset.kind = rc.kind || "";
    set("receipt-bank", rc.bank_name ? rc.bank_name + " (" + rc.bank + ")" : rc.bank);
    set("receipt-account", rc.account_masked);
    set("receipt-holder", rc.holder_name_masked);
    set("receipt-po", rc.post_office);
    set("receipt-po-name", rc.post_office_name || rc.post_office);
    $("receipt-po-address").textContent = rc.post_office_address || "";
    set("receipt-kiosk", rc.kiosk);
    set("receipt-teller", rc.teller);
    set("receipt-day", S.day(rc.business_date));
    set("receipt-code", rc.verification_code);
    set("receipt-id", rc.withdrawal_id);
    $("receipt-reprint").hidden = !rc.reprint;
    ui.receipt.dataset.withdrawal = rc.withdrawal_id || "";
    ui.payoutView.hidden = true;
    ui.depositView.hidden = true;
    ui.scanView.hidden = true;
    ui.receipt.hidden = false;
    ui.next.focus();
    loadTill();
  }

  // reprint shows a payout (or a deposit) of today again, from "My day".
  // Not while one is on screen: that one must be finished or cancelled
  // first.
  async function reprint(id, button, deposit) {
    if (current) return;
    S.hideError(ui.error);
    await S.busy(button, async () => {
      try {
        const path = deposit ? "/v1/teller/deposits/" + encodeURIComponent(id) + "/receipt"
          : "/v1/teller/receipts/" + encodeURIComponent(id);
        showReceipt(await S.request("GET", path));
      } catch (err) {
        fail(err);
      }
    });
  }

  ui.print.addEventListener("click", () => window.print());
  ui.next.addEventListener("click", () => { S.hideError(ui.error); toScan(); });

  // ---- my day ------------------------------------------------------------

  async function loadTill() {
    try {
      const t = await S.request("GET", "/v1/teller/till");
      ui.tillPO.textContent = t.post_office || "";
      ui.tillCount.textContent = String(t.count || 0);
      ui.tillPaidOut.textContent = S.money(t.paid_out || 0);
      ui.tillCash.textContent = S.money(t.cash || 0);
      $("till-deposit-count").textContent = String(t.deposit_count || 0);
      $("till-cash-in").textContent = S.money(t.cash_in || 0);
      // Payouts and deposits in one list, newest first; a deposit's amount
      // is marked "+" (cash into the till).
      const items = (t.payouts || []).map((p) => ({ p, deposit: false }))
        .concat((t.deposits || []).map((p) => ({ p, deposit: true })))
        .sort((a, b) => Date.parse(b.p.paid_at) - Date.parse(a.p.paid_at));
      const rows = items.map(({ p, deposit }) => {
        const tr = document.createElement("tr");
        const b = S.el("button", "In lại · Reprint", "secondary small reprint");
        b.type = "button";
        if (deposit) b.dataset.deposit = p.withdrawal_id;
        else b.dataset.withdrawal = p.withdrawal_id;
        b.addEventListener("click", () => reprint(p.withdrawal_id, b, deposit));
        const td = document.createElement("td");
        td.append(b);
        tr.append(S.el("td", S.clock(p.paid_at)), S.el("td", (deposit ? "+" : "") + S.money(p.amount), "num" + (deposit ? " cash-in" : "")), td);
        if (deposit) tr.dataset.deposit = p.withdrawal_id;
        else tr.dataset.withdrawal = p.withdrawal_id;
        return tr;
      });
      if (!rows.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = S.el("td", "Chưa có · None yet");
        td.colSpan = 3;
        tr.append(td);
        rows.push(tr);
      }
      ui.tillPayouts.replaceChildren(...rows);
    } catch (err) {
      if (err.code === "unauthorized") fail(err);
    }
  }

  ui.tillRefresh.addEventListener("click", () => S.busy(ui.tillRefresh, loadTill));

  // ---- start -------------------------------------------------------------

  (async () => {
    try {
      const s = await S.me();
      if (s.role === "teller") return showWork(s);
    } catch (err) {
      if (err.code !== "unauthorized") fail(err);
    }
    showLogin();
  })();
})();
