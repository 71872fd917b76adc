// Shared code of the staff pages: the API client (CSRF token, idempotency
// keys), the two languages, error messages and money and date formatting.
// Plain browser JavaScript, no build step. It defines one global, SoftATM.
//
// Languages. Every page shows one language at a time, Vietnamese unless the
// person chose English with the switch this file puts in each page's header
// (remembered in localStorage). <html lang> follows the choice, so the
// browser's own widgets and the screen reader follow it too. The pages are
// written with both languages side by side ("Tiếng Việt <span class=en>·
// English</span>", or "Tiếng Việt · English" in a button or a message a
// script writes); this file turns each pair into a <span class=vi> and a
// <span class=en>, as the page loads and whenever a script writes new text
// (a MutationObserver), and the CSS shows only the chosen one. Switching is
// therefore instant and loses nothing on screen. The messages scripts build
// (errors, states, tries left) come from the dictionaries below.
"use strict";

(function () {
  // Bilingual, plain-word messages for every stable error code. The server's
  // own message is never shown to a teller: codes are the contract.
  const MESSAGES = {
    code_expired: ["Mã đã hết hạn. Người dân cần tạo mã mới trên ứng dụng ngân hàng.",
      "The code has expired. The citizen must make a new code in the banking app."],
    code_already_used: ["Mã này đã được sử dụng, tiền đã được chi. KHÔNG chi thêm.",
      "This code has already been used: the cash was paid. Do NOT pay again."],
    code_claimed_elsewhere: ["Mã này đang được xử lý ở quầy khác.",
      "This code is being handled at another counter."],
    code_cancelled: ["Mã đã bị hủy hoặc không còn hiệu lực. Người dân cần tạo mã mới.",
      "This code was cancelled or is no longer valid. The citizen must make a new code."],
    code_invalid: ["Mã không đúng. Hãy kiểm tra lại mã và 4 số cuối điện thoại.",
      "Wrong code. Check the code and the last 4 digits of the phone."],
    code_numeric_blocked: ["Mã số này đã bị khóa vì nhập sai 4 số cuối điện thoại quá nhiều lần. Hãy quét mã QR trên điện thoại của người dân.",
      "This numeric code is blocked after too many wrong phone digits. Scan the QR code on the citizen's phone instead."],
    till_insufficient: ["Quầy không đủ tiền mặt để chi khoản này.",
      "Not enough cash in the till for this amount."],
    bank_unavailable: ["Ngân hàng tạm thời không phản hồi. Vui lòng thử lại sau ít phút.",
      "The bank is not answering right now. Please try again in a few minutes."],
    declined: ["Ngân hàng từ chối giao dịch.", "The bank declined this transaction."],
    limit_exceeded: ["Vượt quá hạn mức rút tiền trong ngày.", "The daily withdrawal limit would be exceeded."],
    invalid_amount: ["Số tiền không hợp lệ.", "The amount is not valid."],
    unknown_account: ["Tài khoản không tồn tại.", "The account is not known."],
    account_not_of_client_bank: ["Tài khoản không thuộc ngân hàng này.", "The account does not belong to this bank."],
    bank_reply_invalid: ["Trả lời của ngân hàng không khớp yêu cầu. Chưa giữ tiền; vui lòng thử lại.",
      "The bank's answer did not match the request. Nothing was held; please try again."],
    locked_out: ["Nhập sai quá nhiều lần. Quầy bị khóa tạm thời, vui lòng chờ rồi thử lại.",
      "Too many wrong attempts. This counter is locked for a while; wait and try again."],
    rate_limited: ["Quá nhiều yêu cầu. Vui lòng chờ một chút.", "Too many requests. Please wait a moment."],
    unauthorized: ["Phiên đăng nhập đã hết. Vui lòng đăng nhập lại.", "Your session has ended. Please log in again."],
    forbidden: ["Tài khoản của bạn không được phép làm việc này.", "Your account is not allowed to do this."],
    not_found: ["Không tìm thấy.", "Not found."],
    conflict: ["Trạng thái hiện tại không cho phép thao tác này.", "This cannot be done in the current state."],
    day_closed: ["Ngày làm việc này đã khóa sổ.", "This business day is already closed."],
    day_not_over: ["Chưa qua giờ chốt của mọi ngân hàng: chưa thể khóa sổ ngày này.",
      "Not every bank's cut-off has passed yet: this day cannot be closed."],
    day_has_open_items: ["Ngày này còn việc chưa xong. Ghi lý do để vẫn khóa sổ.",
      "This day still has open items. Give a reason to close it anyway."],
    settlement_file_other_bank: ["Tệp này là của ngân hàng khác.", "This file is another bank's."],
    settlement_file_other_date: ["Tệp này là của ngày khác.", "This file is of another business day."],
    settlement_file_imported: ["Tệp này đã được nhập trước đó.", "This file was already imported."],
    settlement_file_invalid: ["Tệp quyết toán có dòng sai; chưa nhập gì. Xem từng dòng bên dưới.",
      "The settlement file has bad lines; nothing was imported. See each line below."],
    request_in_progress: ["Yêu cầu trước vẫn đang xử lý. Vui lòng chờ.", "The previous request is still running. Please wait."],
    idempotency_key_reused: ["Yêu cầu bị trùng. Vui lòng tải lại trang.", "Duplicate request. Please reload the page."],
    invalid_request: ["Yêu cầu không hợp lệ. Kiểm tra lại thông tin đã nhập.", "The request was not valid. Check what you entered."],
    unavailable: ["Hệ thống tạm thời gián đoạn. Vui lòng thử lại.", "The system is briefly unavailable. Please try again."],
    database_unavailable: ["Cơ sở dữ liệu đang chuyển máy chủ; chưa có gì thay đổi. Vui lòng thử lại sau ít giây.",
      "The database is switching servers; nothing was changed. Please try again in a few seconds."],
    method_not_allowed: ["Yêu cầu không được hỗ trợ. Vui lòng tải lại trang.", "This request is not supported. Please reload the page."],
    internal: ["Có lỗi hệ thống. Vui lòng thử lại hoặc báo bộ phận hỗ trợ.",
      "Something went wrong. Please try again or call support."],
    network: ["Không kết nối được với máy chủ. Kiểm tra mạng rồi thử lại.",
      "Cannot reach the server. Check the network and try again."],
    camera: ["Không mở được camera. Hãy nhập mã số bên dưới.", "The camera is not available. Type the numeric code below."],
    // The citizen's app: each refusal by its real reason ({min}, {max},
    // {unit}, {daily} are filled in with the switch's limits).
    insufficient_funds: ["Tài khoản không đủ tiền cho số tiền này.", "There is not enough money in the account for this amount."],
    account_blocked: ["Tài khoản đang bị khóa. Vui lòng liên hệ ngân hàng.", "The account is blocked. Please contact your bank."],
    bank_daily_limit: ["Vượt hạn mức rút tiền trong ngày của tài khoản tại ngân hàng.", "This is over the account's daily withdrawal limit at the bank."],
    daily_limit: ["Vượt hạn mức rút tiền mặt trong ngày: tối đa {daily} mỗi tài khoản.", "Over the daily cash-out limit: at most {daily} per account."],
    active_code: ["Tài khoản này đang có một mã còn hiệu lực. Hãy dùng hoặc hủy mã đó trước.", "This account already has a live code. Use it or cancel it first."],
    amount_missing: ["Hãy nhập số tiền.", "Enter an amount."],
    amount_too_small: ["Số tiền tối thiểu là {min}.", "The smallest amount is {min}."],
    amount_too_large: ["Số tiền tối đa mỗi lần là {max}.", "The largest amount at a time is {max}."],
    amount_not_multiple: ["Số tiền phải là bội số của {unit}.", "The amount must be a multiple of {unit}."],
    // Cash in (deposits).
    till_cash_cap: ["Quầy đã gần đạt mức tiền mặt tối đa được bảo hiểm. KHÔNG nhận tiền; mời khách đến quầy khác hoặc chờ thu tiền.",
      "The till would go over its insured cash cap. Do NOT take the cash; send the citizen to another counter or wait for a collection."],
    id_number_required: ["Giao dịch tiền mặt lớn: hãy nhập số CCCD/CMND của người nộp (12 hoặc 9 số).",
      "Large cash deposit: type the depositor's ID number (12 or 9 digits)."],
    deposit_not_taken: ["Ngân hàng không ghi có khoản nạp này. HÃY TRẢ LẠI TIỀN CHO KHÁCH. Không in biên nhận.",
      "The bank did not credit this deposit. HAND THE CASH BACK to the citizen. No receipt."],
    deposit_outcome_unknown: ["Chưa rõ khoản nạp đã được ghi nhận hay chưa. GIỮ RIÊNG số tiền này, KHÔNG trả lại khách, rồi bấm Xác nhận lại sau ít phút.",
      "It is not yet known whether this deposit was recorded. KEEP THIS CASH APART, do NOT hand it back, and press Confirm again in a minute."],
  };

  // fill puts vars into a [vi, en] message's {name} places.
  function fill(pair, vars) {
    return pair.map((t) => t.replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m)));
  }

  // STATES names a withdrawal's state, and the badge colour it is shown in.
  const STATES = {
    requested: ["Đang gửi ngân hàng", "Asking the bank", "info"],
    reserved: ["Sẵn sàng rút", "Ready to collect", "info"],
    claimed: ["Quầy đang xử lý", "At the counter", "warn"],
    paid: ["Đã nhận tiền", "Cash paid", "ok"],
    completed: ["Hoàn tất", "Completed", "ok"],
    cancelled: ["Đã hủy", "Cancelled", "muted"],
    expired: ["Hết hạn", "Expired", "muted"],
    failed: ["Thất bại", "Failed", "bad"],
    declined: ["Bị từ chối", "Declined", "bad"],
    // Cash in (deposits).
    deposit_issued: ["Chờ nộp tiền tại quầy", "Ready to deposit", "info"],
    at_counter: ["Quầy đang nhận tiền", "At the counter", "warn"],
    crediting: ["Đang ghi có", "Being credited", "warn"],
    credited: ["Đã nạp tiền", "Cash deposited", "ok"],
    credit_declined: ["Bị từ chối", "Declined", "bad"],
    credit_failed: ["Thất bại", "Failed", "bad"],
    deposit_cancelled: ["Đã hủy", "Cancelled", "muted"],
    deposit_expired: ["Hết hạn", "Expired", "muted"],
  };

  // ---- languages ---------------------------------------------------------

  const langKey = "softatm.lang"; // localStorage key of the chosen language
  const langs = ["vi", "en"];

  function lang() {
    let l = "";
    try { l = localStorage.getItem(langKey) || ""; } catch (e) { /* storage off: default */ }
    return langs.includes(l) ? l : "vi";
  }

  // pick returns the chosen language's half of a [vi, en] pair.
  function pick(pair) { return pair[lang() === "en" ? 1 : 0]; }

  // bi builds <span class=vi>vi</span><span class=en>en</span>: text that
  // follows the language switch.
  function bi(vi, en) {
    const f = document.createDocumentFragment();
    const v = document.createElement("span");
    v.className = "vi";
    v.textContent = vi;
    const e = document.createElement("span");
    e.className = "en";
    e.textContent = en;
    f.append(v, e);
    return f;
  }

  const viLetter = /[À-ỹĐđ]/; // a letter only Vietnamese text has here
  const sep = " · ";
  // splitPair splits "Tiếng Việt · English" where the first half is
  // Vietnamese and the second is not; null if the text is no such pair
  // ("teller1 · LS-001" is not).
  function splitPair(text, separator) {
    let from = 0;
    for (;;) {
      const i = text.indexOf(separator || sep, from);
      if (i < 0) return null;
      const vi = text.slice(0, i), en = text.slice(i + (separator || sep).length);
      if (viLetter.test(vi) && !viLetter.test(en) && en.trim() !== "") return [vi, en];
      from = i + 1;
    }
  }

  const pairAttrs = ["placeholder", "alt", "title", "aria-label"];
  const noSpans = new Set(["OPTION", "TEXTAREA", "SCRIPT", "STYLE", "TITLE"]);

  // localize turns the bilingual text under root into spans (see above).
  function localize(root) {
    if (!root || root.nodeType !== 1) return;
    // 1. Text before an .en span is its Vietnamese half.
    const ens = root.matches(".en, .en-light") ? [root] : [];
    ens.push(...root.querySelectorAll(".en:not([data-bi]), .en-light:not([data-bi])"));
    for (const en of ens) {
      if (en.dataset.bi) continue;
      en.dataset.bi = "1";
      const before = [];
      for (let n = en.previousSibling; n && n.nodeType === 3; n = n.previousSibling) before.unshift(n);
      if (before.some((n) => n.nodeValue.trim() !== "")) {
        const v = document.createElement("span");
        v.className = "vi";
        en.parentNode.insertBefore(v, en);
        before.forEach((n) => v.append(n));
      }
      const first = en.firstChild;
      if (first && first.nodeType === 3) first.nodeValue = first.nodeValue.replace(/^\s*·\s*/, "");
    }
    // 2. "Tiếng Việt · English" in one text node.
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const pairs = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const p = n.parentNode;
      if (!p || p.closest(".vi, .en, .en-light")) continue;
      const pair = splitPair(n.nodeValue);
      if (pair) pairs.push([n, pair]);
    }
    for (const [n, [vi, en]] of pairs) {
      const p = n.parentNode;
      if (noSpans.has(p.nodeName)) {
        p.dataset.vi = vi;
        p.dataset.en = en;
        p.dataset.biText = "1";
        n.nodeValue = lang() === "en" ? en : vi;
        continue;
      }
      p.replaceChild(bi(vi, en), n);
    }
    // 3. Attributes.
    for (const el of [root, ...root.querySelectorAll("[" + pairAttrs.join("],[") + "]")]) {
      for (const a of pairAttrs) {
        const v = el.getAttribute(a);
        const pair = v && splitPair(v);
        if (!pair) continue;
        el.dataset["vi" + a.replace("-", "")] = pair[0];
        el.dataset["en" + a.replace("-", "")] = pair[1];
        el.dataset.biAttrs = "1";
        el.setAttribute(a, pick(pair));
      }
    }
  }

  // applyLang shows the chosen language everywhere on the page.
  function applyLang() {
    const l = lang();
    document.documentElement.lang = l;
    document.querySelectorAll("[data-bi-text]").forEach((el) => { el.textContent = el.dataset[l]; });
    document.querySelectorAll("[data-bi-attrs]").forEach((el) => {
      for (const a of pairAttrs) {
        const v = el.dataset[l + a.replace("-", "")];
        if (v !== undefined) el.setAttribute(a, v);
      }
    });
    if (titlePair) document.title = pick(titlePair);
    document.querySelectorAll(".lang-switch").forEach((b) => {
      // The button names the other language, in that language.
      b.textContent = l === "en" ? "Tiếng Việt" : "English";
      b.lang = l === "en" ? "vi" : "en";
      b.setAttribute("aria-label", l === "en" ? "Chuyển sang tiếng Việt" : "Switch to English");
    });
  }

  function setLang(l) {
    try { localStorage.setItem(langKey, l); } catch (e) { /* not remembered, still applied */ }
    applyLang();
    document.dispatchEvent(new CustomEvent("softatm:lang", { detail: l }));
  }

  let titlePair = null;
  function startLanguages() {
    titlePair = splitPair(document.title, " — ");
    document.querySelectorAll("header.bar").forEach((h) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "lang-switch";
      b.id = "lang-switch";
      b.addEventListener("click", () => setLang(lang() === "en" ? "vi" : "en"));
      h.append(b);
    });
    localize(document.body);
    applyLang();
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "characterData") {
          const el = r.target.parentNode;
          if (el && el.nodeType === 1) localize(el);
          continue;
        }
        r.addedNodes.forEach((n) => {
          if (n.nodeType === 1) localize(n);
          else if (n.nodeType === 3 && n.parentNode) localize(n.parentNode);
        });
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  }
  document.documentElement.lang = lang();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startLanguages);
  else startLanguages();

  // ApiError carries the stable code of a failed request, and the server's
  // message for the few facts a page reads from it (the kiosk: numeric
  // tries left). The message itself is never shown.
  class ApiError extends Error {
    constructor(code, status, serverMessage) {
      super(code);
      this.code = code;
      this.status = status;
      this.serverMessage = serverMessage || "";
    }
  }

  // message returns [vietnamese, english] for an error code.
  function message(code) {
    return MESSAGES[code] || MESSAGES.internal;
  }

  // showError writes a bilingual message into el (textContent only: nothing
  // from the server or a scanned code is ever parsed as HTML).
  function showError(el, code, override) {
    const [vi, en] = override || message(code);
    el.replaceChildren();
    const v = document.createElement("span");
    v.className = "vi";
    v.textContent = vi;
    const e = document.createElement("span");
    e.className = "en";
    e.textContent = en;
    el.append(v, e);
    el.dataset.code = code || "";
    el.hidden = false;
  }

  function hideError(el) {
    el.hidden = true;
    el.replaceChildren();
    el.dataset.code = "";
  }

  // newKey returns a fresh random idempotency key.
  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // The session's CSRF token, from login or /v1/staff/me.
  let csrf = "";
  // serverOffsetMs is server time minus local time, from the Date header, so
  // that countdowns follow the server's clock and not a kiosk's wrong one.
  let serverOffsetMs = 0;

  // request sends one API call. opts.key is the idempotency key of the
  // user's action: the caller makes it once per action and passes the same
  // one again on a retry, so the server answers the retry with the first
  // result instead of doing the work twice.
  async function request(method, url, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    let body;
    if (opts.form) {
      body = opts.form;
    } else if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    if (method !== "GET" && !opts.noAuthHeaders) {
      headers["X-CSRF-Token"] = csrf;
      headers["Idempotency-Key"] = opts.key || newKey();
    }
    let resp;
    try {
      resp = await fetch(url, { method, headers, body, credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      throw new ApiError("network", 0);
    }
    const date = resp.headers.get("Date");
    if (date) {
      const t = Date.parse(date);
      if (!isNaN(t)) serverOffsetMs = t - Date.now();
    }
    let data = null;
    const ct = resp.headers.get("Content-Type") || "";
    if (ct.includes("application/json")) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    if (!resp.ok) {
      const code = data && data.error && data.error.code ? data.error.code : (resp.status === 401 ? "unauthorized" : "internal");
      const msg = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
      throw new ApiError(code, resp.status, msg);
    }
    return data;
  }

  function serverNow() { return Date.now() + serverOffsetMs; }

  const vnd = new Intl.NumberFormat("vi-VN");
  // money formats an amount in dong (VND has no minor unit) as "1.500.000 ₫".
  function money(amount) {
    const n = Number(amount);
    if (!Number.isFinite(n)) return "—";
    return vnd.format(n) + " ₫";
  }

  const timeFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  // when formats a timestamp in Vietnam time as "dd/mm/yyyy HH:MM:SS", the
  // way Vietnam writes dates, whatever the language or the browser's locale.
  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    if (isNaN(d) || d.getTime() <= 0) return "—";
    const p = {};
    timeFmt.formatToParts(d).forEach((x) => { p[x.type] = x.value; });
    return p.day + "/" + p.month + "/" + p.year + " " + p.hour + ":" + p.minute + ":" + p.second;
  }

  // day formats a business date ("2026-11-27") as "27/11/2026".
  function day(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    return m ? m[3] + "/" + m[2] + "/" + m[1] : "—";
  }

  const clockFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  // clock formats the time of day of a timestamp in Vietnam time.
  function clock(ts) {
    const d = new Date(ts);
    if (!ts || isNaN(d) || d.getTime() <= 0) return "—";
    return clockFmt.format(d);
  }

  // el builds an element with text content and optional class.
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // busy disables buttons while an action runs, so a double tap sends one
  // request; the idempotency key covers what gets through anyway.
  async function busy(buttons, fn) {
    const list = Array.isArray(buttons) ? buttons : [buttons];
    const was = list.map((b) => b.disabled);
    list.forEach((b) => { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    try {
      return await fn();
    } finally {
      list.forEach((b, i) => { b.disabled = was[i]; b.removeAttribute("aria-busy"); });
    }
  }

  window.SoftATM = {
    ApiError, message, showError, hideError, newKey, request, serverNow, money, when, day, clock, el, busy,
    STATES, MESSAGES, lang, setLang, pick, bi, fill,
    setCSRF(t) { csrf = t || ""; },
    async login(username, password) {
      const s = await request("POST", "/v1/staff/login", { json: { username, password }, noAuthHeaders: true });
      csrf = s.csrf_token;
      return s;
    },
    async me() {
      const s = await request("GET", "/v1/staff/me");
      csrf = s.csrf_token;
      return s;
    },
    async logout() {
      try { await request("POST", "/v1/staff/logout"); } catch (e) { /* already out */ }
      csrf = "";
    },
  };
})();
