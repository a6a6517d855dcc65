/* The staff scanning page (反向扫码): sign in at the issuer, pick a venue where the user holds
   `reverse_scan` (venue-admin), then scan cards with the camera (decoded in the page by the
   vendored jsQR) or a handheld scanner (typed text + Enter) and show the verifier's answer.

   Plain script, no build step. The token lives in sessionStorage only (gone with the tab).
   For the browser tests: window.scanMetrics holds the page's measurements, performance
   marks `scan:ready`, `scan:decoded` and `scan:shown` are set as they happen. */
(function () {
  "use strict";

  // A card held in front of the camera is decoded several times a second: the same text is
  // sent again only after this long (a second scan of the same person on purpose).
  var REPEAT_MS = 3000;
  var DECODE_INTERVAL_MS = 200;
  // Frames are scaled down to this width before decoding: a card fills enough of the frame,
  // and jsQR's time grows with the pixels.
  var DECODE_WIDTH = 960;
  var REQUEST_TIMEOUT_MS = 8000;
  var TOKEN_KEY = "hc.scan.session";
  var VENUE_KEY = "hc.scan.venue";
  var COUNT_KEY = "hc.scan.count";

  var TEXT = {
    zh: {
      title: "反向扫码",
      loading: "正在加载…",
      signInTitle: "工作人员登录",
      phone: "手机号",
      sendCode: "获取验证码",
      code: "短信验证码",
      signIn: "登录",
      signOut: "退出登录",
      changeVenue: "切换场所",
      pickVenue: "选择场所",
      noVenues: "您在任何场所都没有反向扫码权限。",
      ready: "请扫码",
      scannerInput: "扫码枪输入",
      pass: "通行",
      deny: "禁止通行",
      manual_check: "人工核验",
      error: "未能核验",
      age: function (n) { return n + "岁"; },
      count: function (n) { return "本次已扫 " + n; },
      stale: "⚠ 健康状态可能不是最新的（健康码服务暂时无法连接），请留意",
      codeSent: "验证码已发送，请查看短信。",
      badPhone: "请输入11位手机号。",
      badCode: "验证码错误或已过期，请重新输入。",
      tooMany: function (s) { return "操作过于频繁，请" + (s ? s + "秒后" : "稍后") + "再试。"; },
      signedOut: "已退出登录。",
      expired: "登录已过期，请重新登录。",
      errNetwork: "网络连接失败，请检查网络后重试。",
      errServer: function (s) { return "服务暂时不可用（" + s + "），请稍后重试。"; },
      errOther: function (s) { return "请求失败（" + s + "）。"; },
      errForbidden: "您在此场所没有反向扫码权限。",
      errVenue: "场所不存在，请重新选择场所。",
      errBadQr: "二维码内容无法识别。",
      errConfig: "页面配置加载失败，请刷新重试。",
      cameraOn: "摄像头已开启：将健康码卡片对准摄像头。",
      cameraStarting: "正在打开摄像头…",
      cameraUnavailable: "摄像头不可用，可使用扫码枪。",
      cameraDenied: "未获得摄像头权限，可使用扫码枪。",
      cameraInsecure: "摄像头需要 HTTPS 访问本页，可使用扫码枪。",
      reasons: {
        color_yellow: "黄码", color_red: "红码", nat_missing: "无核酸记录",
        nat_too_old: "核酸超时", nat_positive: "核酸阳性",
        vaccination_insufficient: "疫苗接种不足", credential_revoked: "凭证已作废",
        credential_expired: "凭证已过期", credential_invalid: "无效凭证",
        status_unavailable: "健康状态暂时无法获取"
      }
    },
    en: {
      title: "Staff scan",
      loading: "Loading…",
      signInTitle: "Staff sign-in",
      phone: "Mobile number",
      sendCode: "Send code",
      code: "SMS code",
      signIn: "Sign in",
      signOut: "Sign out",
      changeVenue: "Change venue",
      pickVenue: "Choose a venue",
      noVenues: "You do not hold the scanning permission at any venue.",
      ready: "Ready to scan",
      scannerInput: "Scanner input",
      pass: "Pass",
      deny: "Denied",
      manual_check: "Manual check",
      error: "Not checked",
      age: function (n) { return "age " + n; },
      count: function (n) { return "Scans: " + n; },
      stale: "⚠ The health status may be out of date (the health-records service cannot be reached)",
      codeSent: "Code sent: check your SMS.",
      badPhone: "Enter an 11-digit mobile number.",
      badCode: "Wrong or expired code: try again.",
      tooMany: function (s) { return "Too many attempts: try again " + (s ? "in " + s + " s." : "later."); },
      signedOut: "Signed out.",
      expired: "Your session has expired: sign in again.",
      errNetwork: "Network error: check the connection and try again.",
      errServer: function (s) { return "Service unavailable (" + s + "): try again shortly."; },
      errOther: function (s) { return "Request failed (" + s + ")."; },
      errForbidden: "You do not hold the scanning permission at this venue.",
      errVenue: "Unknown venue: choose the venue again.",
      errBadQr: "The QR code could not be read.",
      errConfig: "Could not load the page's settings: reload the page.",
      cameraOn: "Camera on: hold the health code card up to it.",
      cameraStarting: "Starting the camera…",
      cameraUnavailable: "No camera available: use a handheld scanner.",
      cameraDenied: "Camera permission refused: use a handheld scanner.",
      cameraInsecure: "The camera needs this page over HTTPS: use a handheld scanner.",
      reasons: {
        color_yellow: "Yellow code", color_red: "Red code", nat_missing: "No NAT result",
        nat_too_old: "NAT result too old", nat_positive: "NAT positive",
        vaccination_insufficient: "Not enough vaccine doses",
        credential_revoked: "Credential revoked", credential_expired: "Credential expired",
        credential_invalid: "Invalid credential",
        status_unavailable: "Health status unavailable"
      }
    }
  };
  var COLOR_WORDS = {
    zh: { green: "绿码", yellow: "黄码", red: "红码" },
    en: { green: "Green code", yellow: "Yellow code", red: "Red code" }
  };

  // Chinese unless the browser's first preference between Chinese and English is English.
  var lang = (function () {
    var prefs = navigator.languages && navigator.languages.length
      ? navigator.languages : [navigator.language || "zh-CN"];
    for (var i = 0; i < prefs.length; i++) {
      var p = String(prefs[i]).toLowerCase();
      if (p.indexOf("zh") === 0) return "zh";
      if (p.indexOf("en") === 0) return "en";
    }
    return "zh";
  })();
  var T = TEXT[lang];
  function t(key) {
    var value = T[key];
    if (typeof value === "function") return value.apply(null, Array.prototype.slice.call(arguments, 1));
    return value;
  }

  var $ = function (id) { return document.getElementById(id); };
  var metrics = (window.scanMetrics = { lang: lang, decodeToAnswerMs: [], scans: 0 });
  var config = null;
  var session = readJson(TOKEN_KEY);
  var venue = readJson(VENUE_KEY);
  var scans = Number(sessionStorage.getItem(COUNT_KEY)) || 0;
  var stream = null, decodeTimer = null, canvas = null, context = null;
  var inFlight = false, pending = null, lastQr = null, lastAt = -Infinity, decodedAt = 0;
  var audio = null;

  // --- storage --------------------------------------------------------------------------

  function readJson(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { return null; }
  }
  function writeJson(key, value) {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  }

  // --- views and messages ---------------------------------------------------------------

  function show(view) {
    ["loading-view", "signin-view", "venues-view", "scan-view"].forEach(function (id) {
      $(id).hidden = id !== view;
    });
    document.body.dataset.view = view.replace("-view", "");
    var signedIn = view === "venues-view" || view === "scan-view";
    $("sign-out").hidden = !signedIn;
    $("change-venue").hidden = view !== "scan-view";
    $("count").hidden = view !== "scan-view";
    $("venue-name").textContent = view === "scan-view" && venue ? venue.name : "";
    if (view !== "scan-view") stopCamera();
  }
  function message(text, isError) {
    var el = $("message");
    el.textContent = text || "";
    el.hidden = !text;
    el.className = "message" + (isError ? " error" : "");
  }

  // --- HTTP -----------------------------------------------------------------------------

  function SignedOut() {}

  function request(url, options) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS);
    options = options || {};
    options.signal = controller.signal;
    return fetch(url, options).finally(function () { clearTimeout(timer); });
  }
  function jsonPost(url, body, headers) {
    return request(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
      body: JSON.stringify(body)
    });
  }
  function authHeaders() {
    return { Authorization: "Bearer " + session.access_token };
  }
  // A GET with the token; a 401 ends the session (thrown as SignedOut).
  function getJson(url) {
    return request(url, { headers: authHeaders() }).then(function (response) {
      if (response.status === 401) { expire(); throw new SignedOut(); }
      if (!response.ok) { var e = new Error("HTTP " + response.status); e.status = response.status; throw e; }
      return response.json();
    });
  }
  function statusWords(status) {
    return status >= 500 ? t("errServer", status) : t("errOther", status);
  }

  // --- sign-in --------------------------------------------------------------------------

  function showSignIn(text, isError) {
    show("signin-view");
    $("code-form").hidden = true;
    message(text, isError);
    $("phone").focus();
  }
  function expire() {
    endSession();
    showSignIn(t("expired"), true);
  }
  function endSession() {
    session = null; venue = null;
    writeJson(TOKEN_KEY, null); writeJson(VENUE_KEY, null);
    sessionStorage.removeItem(COUNT_KEY);
    scans = 0;
  }
  function busy(button, on) { button.disabled = on; }

  $("phone-form").addEventListener("submit", function (event) {
    event.preventDefault();
    unlockAudio();
    var phone = $("phone").value.trim();
    if (!/^1\d{10}$/.test(phone)) { message(t("badPhone"), true); return; }
    busy($("send-code"), true);
    jsonPost(config.issuer_url + "/v1/auth/otp", { phone: phone })
      .then(function (response) {
        if (response.status === 202) {
          $("code-form").hidden = false;
          message(t("codeSent"));
          $("code").focus();
        } else if (response.status === 429) {
          message(t("tooMany", response.headers.get("Retry-After")), true);
        } else if (response.status === 422) {
          message(t("badPhone"), true);
        } else {
          message(statusWords(response.status), true);
        }
      })
      .catch(function () { message(t("errNetwork"), true); })
      .finally(function () { busy($("send-code"), false); });
  });

  $("code-form").addEventListener("submit", function (event) {
    event.preventDefault();
    unlockAudio();
    var phone = $("phone").value.trim();
    var code = $("code").value.trim();
    busy($("sign-in"), true);
    jsonPost(config.issuer_url + "/v1/auth/token", { phone: phone, code: code })
      .then(function (response) {
        if (response.status === 200) {
          return response.json().then(function (body) {
            session = {
              access_token: body.access_token,
              user_id: body.user_id,
              expires_at: Date.now() + body.expires_in * 1000
            };
            writeJson(TOKEN_KEY, session);
            $("code").value = "";
            message("");
            return loadVenues();
          });
        }
        if (response.status === 401 || response.status === 422) message(t("badCode"), true);
        else if (response.status === 429) message(t("tooMany", response.headers.get("Retry-After")), true);
        else message(statusWords(response.status), true);
      })
      .catch(function (e) { if (!(e instanceof SignedOut)) message(t("errNetwork"), true); })
      .finally(function () { busy($("sign-in"), false); });
  });

  $("sign-out").addEventListener("click", function () {
    endSession();
    showSignIn(t("signedOut"));
  });
  $("change-venue").addEventListener("click", function () {
    venue = null;
    writeJson(VENUE_KEY, null);
    message("");
    loadVenues();
  });

  // --- venues ---------------------------------------------------------------------------

  // Every item of a paged list (`items`, `next_cursor`).
  function listAll(url, stopWhen) {
    var items = [];
    function page(cursor) {
      var sep = url.indexOf("?") < 0 ? "?" : "&";
      return getJson(url + sep + "limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""))
        .then(function (body) {
          items = items.concat(body.items || []);
          if (stopWhen && items.some(stopWhen)) return items;
          return body.next_cursor ? page(body.next_cursor) : items;
        });
    }
    return page(null);
  }

  // venue-admin's venue list says the caller's role, not permissions: the caller's own entry
  // in each venue's member list does.
  function holdsReverseScan(v) {
    var mine = function (m) { return m.user_id === session.user_id; };
    return listAll(config.venue_admin_url + "/v1/venues/" + encodeURIComponent(v.venue_id) + "/members", mine)
      .then(function (members) {
        var me = members.filter(mine)[0];
        return !!(me && me.permissions && me.permissions.indexOf("reverse_scan") >= 0);
      })
      .catch(function (e) {
        if (e instanceof SignedOut) throw e;
        return false; // 403/404: not (or no longer) a member there
      });
  }

  function loadVenues() {
    show("venues-view");
    $("venue-list").textContent = "";
    $("venues-empty").hidden = true;
    return listAll(config.venue_admin_url + "/v1/venues")
      .then(function (venues) {
        return Promise.all(venues.map(holdsReverseScan)).then(function (held) {
          return venues.filter(function (_, i) { return held[i]; });
        });
      })
      .then(renderVenues)
      .catch(function (e) {
        if (e instanceof SignedOut) return;
        message(e && e.status ? statusWords(e.status) : t("errNetwork"), true);
      });
  }

  function renderVenues(venues) {
    var list = $("venue-list");
    list.textContent = "";
    $("venues-empty").hidden = venues.length > 0;
    venues.forEach(function (v) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "venue";
      button.dataset.venueId = v.venue_id;
      button.textContent = v.name;
      var detail = document.createElement("small");
      detail.textContent = v.address || "";
      button.appendChild(detail);
      button.addEventListener("click", function () {
        unlockAudio();
        venue = { venue_id: v.venue_id, name: v.name };
        writeJson(VENUE_KEY, venue);
        message("");
        startScanning();
      });
      item.appendChild(button);
      list.appendChild(item);
    });
  }

  // --- scanning -------------------------------------------------------------------------

  function startScanning() {
    show("scan-view");
    resetBand();
    updateCount();
    $("qr-input").focus();
    startCamera();
  }

  function resetBand() {
    var band = $("band");
    band.className = "band idle";
    band.dataset.state = "idle";
    band.dataset.color = "";
    $("decision").textContent = t("ready");
    $("holder").textContent = "";
    $("lines").textContent = "";
    $("stale").hidden = true;
  }

  function updateCount() { $("count").textContent = t("count", scans); }

  function cameraStatus(key) { $("camera-status").textContent = t(key); }

  function startCamera() {
    if (stream) return;
    if (!window.isSecureContext) { cameraStatus("cameraInsecure"); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraStatus("cameraUnavailable");
      return;
    }
    cameraStatus("cameraStarting");
    navigator.mediaDevices
      .getUserMedia({
        audio: false,
        // The rear camera of a phone when there is one.
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }
      })
      .then(function (media) {
        if ($("scan-view").hidden) { media.getTracks().forEach(function (tr) { tr.stop(); }); return; }
        stream = media;
        var video = $("video");
        video.srcObject = media;
        var played = video.play();
        if (played && played.catch) played.catch(function () {});
        cameraStatus("cameraOn");
        decodeTimer = setTimeout(decodeFrame, DECODE_INTERVAL_MS);
      })
      .catch(function (e) {
        cameraStatus(e && e.name === "NotAllowedError" ? "cameraDenied" : "cameraUnavailable");
      });
  }

  function stopCamera() {
    clearTimeout(decodeTimer);
    decodeTimer = null;
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    stream = null;
    var video = $("video");
    if (video) video.srcObject = null;
  }

  function decodeFrame() {
    if (!stream) return;
    var video = $("video");
    if (!inFlight && !document.hidden && video.readyState >= 2 && video.videoWidth && window.jsQR) {
      var scale = Math.min(1, DECODE_WIDTH / video.videoWidth);
      var w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
      if (!canvas) {
        canvas = document.createElement("canvas");
        context = canvas.getContext("2d", { willReadFrequently: true });
      }
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      context.drawImage(video, 0, 0, w, h);
      var found = window.jsQR(context.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
      if (found && found.data) submit(found.data);
    }
    decodeTimer = setTimeout(decodeFrame, DECODE_INTERVAL_MS);
  }

  // A handheld scanner types the QR text and presses Enter into the focused field.
  $("manual-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = $("qr-input");
    var text = input.value;
    input.value = "";
    submit(text);
  });
  // Keep the scanner's field focused while scanning (a scanner types wherever focus is).
  document.addEventListener("click", function (event) {
    if ($("scan-view").hidden) return;
    var tag = event.target && event.target.tagName;
    if (tag !== "INPUT" && tag !== "BUTTON") $("qr-input").focus();
  });

  // The one path of both the camera and the scanner.
  function submit(text) {
    var qr = String(text || "").trim();
    if (!qr || !venue || !session) return;
    var now = performance.now();
    if (qr === lastQr && now - lastAt < REPEAT_MS) return;
    if (inFlight) { pending = qr; return; }
    lastQr = qr; lastAt = now;
    inFlight = true;
    decodedAt = now;
    performance.mark("scan:decoded");
    verify(qr).finally(function () {
      inFlight = false;
      if (pending) { var next = pending; pending = null; submit(next); }
    });
  }

  function verify(qr) {
    return jsonPost(
      "/v1/verify",
      { qr: qr, venue_id: venue.venue_id },
      Object.assign(authHeaders(), { "Accept-Language": lang === "en" ? "en" : "zh-CN" })
    )
      .then(function (response) {
        if (response.status === 200) return response.json().then(showAnswer);
        if (response.status === 401) { expire(); return; }
        if (response.status === 403) return showError(t("errForbidden"));
        if (response.status === 404) return showError(t("errVenue"));
        if (response.status === 422) return showError(t("errBadQr"));
        if (response.status === 429) return showError(t("tooMany", response.headers.get("Retry-After")));
        return showError(statusWords(response.status));
      })
      .catch(function () { showError(t("errNetwork")); });
  }

  function fallbackLines(answer) {
    // Before the verifier answered `lines`: the colour and the reasons in words.
    var lines = [];
    if (answer.health && COLOR_WORDS[lang][answer.health.color]) lines.push(COLOR_WORDS[lang][answer.health.color]);
    (answer.reasons || []).forEach(function (r) {
      var words = T.reasons[r] || r;
      if (lines.indexOf(words) < 0) lines.push(words);
    });
    return lines;
  }

  function showAnswer(answer) {
    var decision = answer.decision;
    var color = decision === "manual_check" || !answer.health ? "grey" : answer.health.color;
    if (["green", "yellow", "red"].indexOf(color) < 0) color = "grey";
    var band = $("band");
    band.className = "band " + color + " " + decision;
    band.dataset.state = decision;
    band.dataset.color = color;
    $("decision").textContent = t(decision) || decision;
    var holder = answer.holder;
    $("holder").textContent = holder ? holder.masked_name + " · " + t("age", holder.age) : "";
    var lines = Array.isArray(answer.lines) ? answer.lines : fallbackLines(answer);
    var list = $("lines");
    list.textContent = "";
    lines.forEach(function (line) {
      // Shown above in big words: the name (with the age) and the decision.
      if ((holder && line === holder.masked_name) || line === t(decision)) return;
      var item = document.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    });
    $("stale").hidden = !answer.stale;
    $("stale").textContent = answer.stale ? t("stale") : "";
    message("");
    answered(decision);
  }

  function showError(text) {
    var band = $("band");
    band.className = "band error";
    band.dataset.state = "error";
    band.dataset.color = "";
    $("decision").textContent = t("error");
    $("holder").textContent = "";
    var list = $("lines");
    list.textContent = "";
    var item = document.createElement("li");
    item.textContent = text;
    list.appendChild(item);
    $("stale").hidden = true;
    answered("error");
  }

  function answered(kind) {
    if (kind !== "error") {
      scans += 1;
      metrics.scans = scans;
      sessionStorage.setItem(COUNT_KEY, String(scans));
      updateCount();
    }
    beep(kind);
    // Measured once the answer is painted.
    requestAnimationFrame(function () {
      var ms = performance.now() - decodedAt;
      performance.mark("scan:shown");
      metrics.decodeToAnswerMs.push(ms);
      metrics.lastDecodeToAnswerMs = ms;
    });
    if (document.activeElement === document.body || !document.activeElement) $("qr-input").focus();
  }

  // --- sound: WebAudio beeps, no files --------------------------------------------------

  function unlockAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) { try { audio = new Ctx(); } catch (e) { return; } }
    if (audio.state === "suspended" && audio.resume) audio.resume().catch(function () {});
  }
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);

  function tone(freq, start, length, type) {
    var osc = audio.createOscillator();
    var gain = audio.createGain();
    osc.type = type;
    osc.frequency.value = freq;
    var at = audio.currentTime + start;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.3, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + length + 0.02);
  }
  function beep(kind) {
    metrics.lastSound = kind;
    if (!audio) return;
    try {
      if (kind === "pass") { tone(1046, 0, 0.12, "sine"); tone(1568, 0.14, 0.16, "sine"); }
      else if (kind === "deny") { tone(196, 0, 0.6, "square"); }
      else { tone(440, 0, 0.15, "triangle"); tone(440, 0.25, 0.15, "triangle"); }
    } catch (e) { /* no sound is no reason to fail the scan */ }
  }

  // --- start ----------------------------------------------------------------------------

  function translate() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.title = t("title");
    var nodes = document.querySelectorAll("[data-t]");
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].dataset.t);
  }

  function ready() {
    performance.mark("scan:ready");
    metrics.readyMs = performance.now();
  }

  translate();
  request("config.json")
    .then(function (response) {
      if (!response.ok) throw new Error("config " + response.status);
      return response.json();
    })
    .then(function (body) {
      config = body;
      if (!session || !session.access_token || Date.now() >= session.expires_at) {
        var hadSession = !!session;
        endSession();
        showSignIn(hadSession ? t("expired") : "", hadSession);
      } else if (venue) {
        startScanning();
      } else {
        loadVenues();
      }
      ready();
    })
    .catch(function () {
      show("loading-view");
      message(t("errConfig"), true);
      ready();
    });
})();
