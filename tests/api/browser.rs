//! The web pages in a real browser: headless Chromium driven over WebDriver (chromedriver +
//! fantoccini) against an app on a random port — a customer at `/kiosk` taps through a card
//! loss with simulated devices, asks for a person whom a teller at `/console` serves, asks
//! a question an editor wrote and a reviewer approved in `/studio`; articles with markup in
//! them show as text; a refused microphone falls back to touch.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `CONCIERGE_SKIP_BROWSER=1` skips.
//! Screenshots of every page land in `target/screenshots/` (or `$CARGO_TARGET_DIR/…`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use kiosk_adapter::drivers::{DeviceFuture, Driver, Drivers};
use kiosk_adapter::sim::SimulatedDevices;
use kiosk_protocol::PeerRole;
use serde_json::{json, Value};

use crate::helpers::{models_dir, project_root, spawn_app, spawn_app_with, Engine, TestApp};

/// How long a page may take to show what we wait for (generous: the whole suite may be
/// running beside these tests on two cores; a passing wait returns as soon as it can).
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a test waits for speech recognition of a clip it played.
const HEARING_PATIENCE: Duration = Duration::from_secs(120);

/// A headless Chromium behind its own chromedriver; both end when this is dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in its own process group with the browser it started: end them all.
        let pid = self.driver.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_program(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_absolute() && p.exists() {
            return Some(p);
        }
        if !p.is_absolute() {
            if let Some(path) = std::env::var_os("PATH") {
                for dir in std::env::split_paths(&path) {
                    if dir.join(c).exists() {
                        return Some(dir.join(c));
                    }
                }
            }
        }
    }
    None
}

/// A browser with a `width`×`height` window, or `None` when browser tests are skipped.
async fn browser(width: u32, height: u32) -> Option<Browser> {
    browser_with(width, height, &[]).await
}

/// As [`browser`], with extra Chromium flags.
async fn browser_with(width: u32, height: u32, extra: &[String]) -> Option<Browser> {
    if std::env::var("CONCIERGE_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        println!("skipping browser test: CONCIERGE_SKIP_BROWSER=1");
        return None;
    }
    let driver_bin = find_program("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"])
        .unwrap_or_else(|| {
            panic!(
                "chromedriver not found: the browser tests need Chromium and its WebDriver \
             (Debian: apt-get install chromium chromium-driver), or set CHROMEDRIVER; \
             CONCIERGE_SKIP_BROWSER=1 skips them"
            )
        });
    let chrome_bin =
        find_program("CHROME_BIN", &["/usr/bin/chromium", "chromium"]).unwrap_or_else(|| {
            panic!(
                "chromium not found: apt-get install chromium chromium-driver, or set \
                 CHROME_BIN; CONCIERGE_SKIP_BROWSER=1 skips the browser tests"
            )
        });
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new(&driver_bin);
    cmd.arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let driver = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
    let profile = tempfile::tempdir().unwrap();
    let mut b = BrowserStart {
        driver: Some(driver),
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = reqwest::get(format!("{url}/status")).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--use-fake-ui-for-media-stream".into(),
        "--use-fake-device-for-media-stream".into(),
        "--autoplay-policy=no-user-gesture-required".into(),
        "--hide-scrollbars".into(),
        "--lang=zh-CN".into(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--window-size={width},{height}"),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect::<Vec<String>>();
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chrome_bin.to_string_lossy(), "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", chrome_bin.display()));
    let driver = b.driver.take().unwrap();
    let browser = Browser {
        client,
        driver,
        _profile: profile,
    };
    // Headless windows include no browser chrome, but make the viewport exact anyway.
    browser.resize_viewport(width, height).await;
    Some(browser)
}

/// Kills chromedriver if starting the browser fails half-way.
struct BrowserStart {
    driver: Option<Child>,
}

impl Drop for BrowserStart {
    fn drop(&mut self) {
        if let Some(d) = self.driver.as_mut() {
            // SAFETY: as in `Browser::drop`.
            unsafe {
                libc::kill(-(d.id() as i32), libc::SIGKILL);
            }
            let _ = d.wait();
        }
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    async fn resize_viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(0),
            inner[1].as_u64().unwrap_or(0),
        );
        if (iw, ih) != (u64::from(width), u64::from(height)) && iw > 0 {
            let w = width + (width - iw.min(u64::from(width)) as u32);
            let h = height + (height - ih.min(u64::from(height)) as u32);
            self.client.set_window_size(w, h).await.unwrap();
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Polls `check` (a script returning a value or null) until it returns something truthy.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.until_within(PATIENCE, what, script, args).await
    }

    /// [`Self::until`] with its own patience (speech recognition on a loaded 2-core CI
    /// machine, next to other tests' apps and browsers, can take far longer than a click).
    async fn until_within(
        &self,
        patience: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script, args.clone()).await;
            let done = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if done {
                return v;
            }
            if started.elapsed() > patience {
                let text = self.js("return document.body.innerText;", vec![]).await;
                self.screenshot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                panic!("waited {patience:?} for {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the visible text of `selector` contains `needle`.
    async fn wait_text(&self, selector: &str, needle: &str) -> String {
        self.wait_text_within(PATIENCE, selector, needle).await
    }

    /// [`Self::wait_text`] with its own patience.
    async fn wait_text_within(&self, patience: Duration, selector: &str, needle: &str) -> String {
        let v = self
            .until_within(
                patience,
                &format!("{selector} to show {needle}"),
                "const el = document.querySelector(arguments[0]);
                 if (!el || el.offsetParent === null && getComputedStyle(el).position !== 'fixed') return null;
                 const t = el.innerText || '';
                 return t.includes(arguments[1]) ? t : null;",
                vec![json!(selector), json!(needle)],
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits for a visible, enabled button whose text is `label` (within `scope`) and clicks it.
    /// Taps 取号排队 and waits for the reply: touch works whatever happened to the voice.
    async fn touch_still_works(&self) {
        self.tap("#choices", "取号排队").await;
        self.until(
            "a reply after the tap",
            "return document.querySelectorAll('#captions .line.bot').length >= 2;",
            vec![],
        )
        .await;
    }

    /// Opens the kiosk page of K001 with its token and waits for the opening's choices.
    async fn open_kiosk(&self, app: &TestApp, token: &str) {
        self.goto(&app.http(&format!("/kiosk?kiosk=K001&token={token}")))
            .await;
        self.wait_text("#choices", "取号排队").await;
    }

    /// Holds the kiosk's mic button until `frames` audio frames of 100 ms have gone out,
    /// then lets go (push-to-talk).
    async fn hold_mic(&self, frames: u32) {
        let press = |kind: &str| {
            format!(
                "document.querySelector('#btn-mic').dispatchEvent(new PointerEvent('{kind}', {{bubbles: true, pointerId: 7}}));"
            )
        };
        self.js(&press("pointerdown"), vec![]).await;
        self.until(
            "audio frames to be sent",
            &format!("return Number(document.querySelector('#btn-mic').dataset.frames || 0) >= {frames};"),
            vec![],
        )
        .await;
        self.js(&press("pointerup"), vec![]).await;
    }

    async fn tap(&self, scope: &str, label: &str) {
        self.until(
            &format!("a button {label} in {scope}"),
            "const root = document.querySelector(arguments[0]);
             if (!root) return null;
             const b = Array.from(root.querySelectorAll('button')).find(b =>
                 b.textContent.trim() === arguments[1] && !b.disabled && b.offsetParent !== null);
             if (!b) return null;
             document.querySelectorAll('[data-wd]').forEach(x => x.removeAttribute('data-wd'));
             b.setAttribute('data-wd', 'tap');
             b.scrollIntoView({block: 'center'});
             return true;",
            vec![json!(scope), json!(label)],
        )
        .await;
        self.click_marked(&format!("a button {label} in {scope}"), || async {
            self.until(
                &format!("a button {label} in {scope}"),
                "const root = document.querySelector(arguments[0]);
                 if (!root) return null;
                 const b = Array.from(root.querySelectorAll('button')).find(b =>
                     b.textContent.trim() === arguments[1] && !b.disabled && b.offsetParent !== null);
                 if (!b) return null;
                 document.querySelectorAll('[data-wd]').forEach(x => x.removeAttribute('data-wd'));
                 b.setAttribute('data-wd', 'tap');
                 return true;",
                vec![json!(scope), json!(label)],
            )
            .await;
        })
        .await;
    }

    /// Clicks the element marked `data-wd='tap'`; when the page redraws it in between (a
    /// reply arrived), marks it again with `remark` and retries.
    async fn click_marked<F, Fut>(&self, what: &str, remark: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let started = Instant::now();
        loop {
            let clicked = match self.client.find(Locator::Css("[data-wd='tap']")).await {
                Ok(el) => el.click().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if started.elapsed() > PATIENCE => panic!("could not click {what}: {e}"),
                Err(_) => remark().await,
            }
        }
    }

    /// Types into the field `selector` (replacing what is there).
    async fn type_into(&self, selector: &str, text: &str) {
        self.until(
            &format!("the field {selector}"),
            "const el = document.querySelector(arguments[0]); return !!el && el.offsetParent !== null;",
            vec![json!(selector)],
        )
        .await;
        let el = self.client.find(Locator::Css(selector)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// Sets a field's value the way typing would (fast for long texts), firing `input`.
    async fn fill(&self, selector: &str, text: &str) {
        self.until(
            &format!("the field {selector}"),
            "const el = document.querySelector(arguments[0]); return !!el && el.offsetParent !== null;",
            vec![json!(selector)],
        )
        .await;
        self.js(
            "const el = document.querySelector(arguments[0]); el.focus(); el.value = arguments[1];
             el.dispatchEvent(new Event('input', {bubbles: true}));
             el.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(selector), json!(text)],
        )
        .await;
    }

    async fn click(&self, selector: &str) {
        let mark = || async {
            self.until(
                &format!("{selector} to be clickable"),
                "const el = document.querySelector(arguments[0]);
                 if (!el || el.offsetParent === null || el.disabled) return null;
                 document.querySelectorAll('[data-wd]').forEach(x => x.removeAttribute('data-wd'));
                 el.setAttribute('data-wd', 'tap');
                 el.scrollIntoView({block: 'center'}); return true;",
                vec![json!(selector)],
            )
            .await;
        };
        mark().await;
        self.click_marked(selector, mark).await;
    }

    async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let path = screenshot_dir().join(format!("{name}.png"));
            std::fs::write(&path, png).unwrap();
            println!("screenshot: {}", path.display());
        }
    }

    /// Staff login on /console or /studio.
    async fn login(&self, name: &str) {
        // The form may come up a moment after what asked for it (a logout first tells the
        // server): type only once it is there, or the form would cover the next click.
        self.until(
            "the login form",
            "const f = document.querySelector('#login'); return !!f && !f.hidden && f.getClientRects().length > 0;",
            vec![],
        )
        .await;
        self.type_into("#login-name", name).await;
        self.type_into("#login-password", "correct horse battery")
            .await;
        self.click("#login-submit").await;
        self.until(
            "the login to finish",
            "const f = document.querySelector('#login'); return !f || f.hidden || f.getClientRects().length === 0;",
            vec![],
        )
        .await;
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Simulated devices whose card reader waits until the test lets it go (so the screen's
/// device prompt can be seen and photographed without guessing at timings).
struct GatedDevices {
    sim: SimulatedDevices,
    card_reader: Arc<tokio::sync::Semaphore>,
}

impl Driver for GatedDevices {
    fn kinds(&self) -> Vec<String> {
        self.sim.kinds()
    }

    fn call<'a>(
        &'a self,
        call_id: &'a str,
        device: &'a str,
        action: &'a str,
        args: &'a Value,
    ) -> DeviceFuture<'a> {
        Box::pin(async move {
            if device == "card_reader" {
                self.card_reader.acquire().await.unwrap().forget();
            }
            self.sim.handle(call_id, device, action, args)
        })
    }
}

/// Connects the kiosk's device peer with simulated devices (ID card, card reader, PIN pad,
/// printers), as `kiosk-adapter --simulate` does; the card reader waits for a permit of
/// the returned semaphore.
async fn simulated_devices(app: &TestApp, kiosk: &str) -> Arc<tokio::sync::Semaphore> {
    let token = app.kiosk(kiosk, "B001", PeerRole::Devices).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let devices: Vec<Arc<dyn Driver>> = vec![Arc::new(GatedDevices {
        sim: SimulatedDevices::new(),
        card_reader: gate.clone(),
    })];
    let drivers = Arc::new(Drivers::new(devices));
    let config = kiosk_adapter::peer::PeerConfig {
        url: app.ws_url(),
        kiosk_id: kiosk.into(),
        token,
    };
    tokio::spawn(async move { kiosk_adapter::peer::run(config, drivers).await });
    for _ in 0..250 {
        if !app.state.broker.devices_of(kiosk).is_empty() {
            return gate;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the simulated device peer did not connect");
}

/// A fresh bearer token for an existing staff user.
async fn app_token(app: &TestApp, name: &str) -> String {
    let res = reqwest::Client::new()
        .post(app.http("/v1/auth/login"))
        .json(&json!({"name": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn seed_bank(app: &TestApp) {
    concierge::ports::banking::sandbox::SandboxBank::new(app.state.db.clone())
        .seed(&project_root().join("deploy/sandbox/customers.yaml"))
        .await
        .unwrap();
}

/// Taps digits on the kiosk's on-screen keypad, then 确定.
async fn keypad(b: &Browser, digits: &str) {
    for d in digits.chars() {
        b.tap("#keypad", &d.to_string()).await;
    }
    b.tap("#keypad", "确定").await;
}

#[tokio::test]
async fn a_customer_reports_a_lost_card_by_touch_at_the_kiosk() {
    let Some(b) = browser(1080, 1920).await else {
        return;
    };
    let app = spawn_app().await;
    seed_bank(&app).await;
    let card_reader = simulated_devices(&app, "K001").await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;

    b.goto(&app.http(&format!("/kiosk?kiosk=K001&token={token}")))
        .await;
    b.wait_text("#captions", "小安").await;
    b.wait_text("#choices", "银行卡挂失").await;
    // The token was stored and taken out of the address bar.
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "{url}");
    b.screenshot("kiosk-portrait-welcome").await;

    b.tap("#choices", "银行卡挂失").await;
    b.wait_text("#captions", "预留的手机号").await;
    b.screenshot("kiosk-portrait-keypad").await;
    keypad(&b, "13812345678").await;
    b.wait_text("#captions", "后四位").await;
    keypad(&b, "6789").await;
    b.wait_text("#choices", "确认").await;
    b.screenshot("kiosk-portrait-choices").await;
    b.tap("#choices", "确认").await;
    b.wait_text("#captions", "挂失成功").await;

    // A balance is shown, never spoken, and hides itself (sensitive screen).
    b.type_into("#text-input", "帮我查一下卡里还有多少钱").await;
    b.click("#text-form .send").await;
    // The card reader waits: the screen shows where to insert the card.
    b.wait_text("#device", "请将银行卡插入下方读卡口").await;
    b.screenshot("kiosk-portrait-device").await;
    card_reader.add_permits(1);
    b.wait_text("#sensitive", "52380.75").await;
    b.screenshot("kiosk-portrait-sensitive").await;
    let spoken = b
        .js(
            "return document.querySelector('#captions').innerText;",
            vec![],
        )
        .await;
    assert!(
        !spoken.as_str().unwrap().contains("52380.75"),
        "the balance is not in the captions: {spoken}"
    );
    b.tap("#sensitive", "我看好了，隐藏").await;
    b.until(
        "the sensitive screen to hide",
        "const s = document.querySelector('#sensitive'); return s.hidden && s.innerText === '';",
        vec![],
    )
    .await;

    b.resize_viewport(1920, 1080).await;
    b.screenshot("kiosk-landscape").await;

    // Elder mode and high contrast are one tap each; elder mode resumes the same session.
    b.click("#btn-elder").await;
    b.click("#btn-contrast").await;
    b.until(
        "elder mode to reconnect",
        "return document.body.classList.contains('elder') && document.querySelector('#banner').hidden;",
        vec![],
    )
    .await;
    b.screenshot("kiosk-landscape-elder-contrast").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_teller_takes_over_a_kiosk_conversation_from_the_console() {
    let Some(kiosk) = browser(1080, 1920).await else {
        return;
    };
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    app.staff("chen", "teller").await;
    let console = browser(1600, 1000).await.unwrap();

    console.goto(&app.http("/console")).await;
    console.screenshot("console-login").await;
    console.login("chen").await;
    console.wait_text("#who", "chen").await;

    kiosk
        .goto(&app.http(&format!("/kiosk?kiosk=K001&token={token}")))
        .await;
    kiosk.tap("#choices", "找工作人员").await;
    let waiting = kiosk.wait_text("#handoff", "B001-").await;
    let number = waiting
        .split_whitespace()
        .find(|w| w.starts_with("B001-"))
        .unwrap()
        .to_string();
    kiosk.screenshot("kiosk-handoff-waiting").await;

    // The teller sees it in the live queue, opens it and accepts.
    console.wait_text("#queue", &number).await;
    console
        .js(
            "Array.from(document.querySelectorAll('#queue .ticket')).find(t => t.innerText.includes(arguments[0])).click();",
            vec![json!(number)],
        )
        .await;
    console.wait_text("#case", &number).await;
    console.tap("#case", "接入").await;
    kiosk.wait_text("#handoff", "工作人员已接入").await;
    kiosk.screenshot("kiosk-handoff-connected").await;

    // One line each way.
    kiosk
        .type_into("#text-input", "我的卡被冻结了，想问问怎么办")
        .await;
    kiosk.click("#text-form .send").await;
    console.wait_text("#chat", "我的卡被冻结了").await;
    console
        .type_into("#chat-input", "您好，我是柜员小陈，请到3号窗口办理解冻。")
        .await;
    console.click("#chat-send").await;
    kiosk.wait_text("#captions", "3号窗口").await;
    console.wait_text("#chat", "3号窗口").await;
    console.screenshot("console-handoff").await;

    // The knowledge helper answers the teller too.
    console.type_into("#kb-q", "银行卡挂失").await;
    console.click("#kb-go").await;
    console
        .until(
            "knowledge hits",
            "return document.querySelectorAll('#kb-hits .hit').length > 0;",
            vec![],
        )
        .await;

    // Calling the next queue number (nobody waits yet).
    console.click("#call-next").await;
    console.wait_text("#toast", "没有人在等候").await;

    // An internal comment lands in the history.
    console.fill("#comment-text", "客户已到3号窗口办理").await;
    console.click("#case .comment-form button").await;
    console
        .wait_text("#case .history", "客户已到3号窗口办理")
        .await;

    // Handing the customer back to 小安.
    console.tap("#case", "交还小安").await;
    kiosk.wait_text("#handoff", "服务已结束").await;
    kiosk.screenshot("kiosk-handoff-ended").await;
    // And resolves the ticket.
    console.fill("#move-to", "resolved").await;
    console.fill("#move-comment", "已到柜台办理").await;
    console.tap("#case", "更新状态").await;
    console.wait_text("#case .case-sub", "已解决").await;
    console.screenshot("console").await;

    // The session's compliance record, from the case (same tab: the login stays).
    let href = console
        .js(
            "const a = document.querySelector('#record-link'); return a ? a.getAttribute('href') : null;",
            vec![],
        )
        .await;
    let href = href.as_str().expect("a link to the compliance record");
    assert!(href.starts_with("/record?session="), "{href}");
    console.goto(&app.http(href)).await;
    console
        .wait_text("#part-transcript", "我的卡被冻结了")
        .await;
    console.wait_text("#part-tickets", &number).await;
    console.wait_text("#part-views", "无").await;
    console.wait_text(".record-facts", "B001").await;
    console.screenshot("record").await;
    kiosk.close().await;
    console.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_the_day_with_its_chart_and_funnels() {
    let Some(b) = browser(1400, 1800).await else {
        return;
    };
    let app = spawn_app().await;
    // The day's traffic, over the kiosk WebSocket: a queue number and goodbye, a person.
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.say("我要取个号").await;
    k.send(json!({"type": "user.choice", "value": "cash.withdraw"}))
        .await;
    k.recv_type("bot.say").await;
    k.say("再见").await;
    let (mut k2, _, _) = app.new_session("K001").await;
    k2.recv_type("bot.say").await;
    k2.send(json!({"type": "user.text", "text": "转人工"}))
        .await;
    k2.recv_type("handoff").await;
    concierge::reports::rollup::catch_up(&app.state.db, concierge::store::now_ms())
        .await
        .unwrap();

    app.staff("li", "admin").await;
    b.goto(&app.http("/reports")).await;
    b.login("li").await;
    b.wait_text("#t-sessions", "2").await;
    b.wait_text("#t-containment", "100.0%").await;
    b.wait_text("#now-handoffs", "1").await;
    b.wait_text("#journeys", "queue.take_number").await;
    b.wait_text("#handoffs", "客户要求").await;
    // uPlot drew the trend on a canvas under the page's strict policy.
    b.until(
        "the trend chart",
        "return document.querySelector('#trend canvas') !== null;",
        vec![],
    )
    .await;
    // The funnel's bars are sized (through the CSSOM, which the policy allows).
    b.until(
        "a sized funnel bar",
        "const f = document.querySelector('.funnel-fill'); return !!f && f.getBoundingClientRect().width > 0;",
        vec![],
    )
    .await;
    // Dates are the branch's 年-月-日, not a browser picker's format.
    let from = b
        .js("return document.querySelector('#from').value;", vec![])
        .await;
    assert!(
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}$")
            .unwrap()
            .is_match(from.as_str().unwrap()),
        "{from}"
    );
    b.screenshot("reports").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn questions_nobody_answered_become_a_draft_in_the_studio() {
    let Some(b) = browser(1600, 1000).await else {
        return;
    };
    let app = spawn_app().await;
    for asked in ["你们网点的猫叫什么名字", "你们网点那只猫叫什么名字"] {
        let (mut k, _, _) = app.new_session("K001").await;
        k.recv_type("bot.say").await;
        k.say(asked).await;
    }
    app.staff("wang", "content_editor").await;
    b.goto(&app.http("/studio")).await;
    b.login("wang").await;
    b.click("#tab-unanswered").await;
    b.wait_text("#unanswered", "你们网点那只猫叫什么名字").await;
    b.wait_text("#unanswered", "2（2 位客户）").await;
    b.screenshot("studio-unanswered").await;
    b.tap("#unanswered", "新建文章").await;
    let title = b
        .until(
            "the draft's title",
            "const v = document.querySelector('#ed-title').value; return v ? v : null;",
            vec![],
        )
        .await;
    assert_eq!(title, "你们网点那只猫叫什么名字");
    let questions = b
        .js(
            "return document.querySelector('#ed-questions').value;",
            vec![],
        )
        .await;
    assert!(
        questions
            .as_str()
            .unwrap()
            .contains("你们网点的猫叫什么名字"),
        "{questions}"
    );
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_article_written_and_approved_in_the_studio_answers_at_the_kiosk() {
    let Some(b) = browser(1600, 1000).await else {
        return;
    };
    let app = spawn_app().await;
    app.staff("wang", "content_editor").await;
    app.staff("li", "content_reviewer").await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;

    // The editor writes and submits.
    b.goto(&app.http("/studio")).await;
    b.login("wang").await;
    b.click("#btn-new").await;
    b.fill("#ed-id", "lobby-water").await;
    b.fill("#ed-title", "大堂饮水机的位置").await;
    b.fill("#ed-questions", "饮水机在哪\n哪里可以喝水").await;
    b.fill(
        "#ed-body",
        "## 饮水机\n\n饮水机在大堂**东侧**休息区，提供温水和热水。\n\n- 纸杯在饮水机旁\n- 如需帮助请找大堂经理",
    )
    .await;
    b.wait_text("#ed-preview", "东侧休息区").await;
    b.screenshot("studio-editor").await;
    // The token expires before saving: the login form comes up over the editor, and after
    // logging in again the save goes through with everything that was typed.
    let status = b
        .js(
            "return fetch('/v1/auth/logout', {method: 'POST', headers: {authorization: 'Bearer ' + sessionStorage.getItem('concierge.staff.token')}}).then(r => r.status);",
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    b.click("#btn-save").await;
    b.login("wang").await;
    b.wait_text("#ed-status", "已保存").await;
    let saved = app
        .get_json(
            "/v1/knowledge/articles/lobby-water",
            &app_token(&app, "wang").await,
        )
        .await;
    assert!(
        saved["head"]["body"]
            .as_str()
            .unwrap()
            .contains("如需帮助请找大堂经理"),
        "{saved}"
    );
    b.click("#btn-submit").await;
    b.wait_text("#ed-status", "已提交审核").await;
    b.click("#btn-logout").await;

    // The reviewer (another person) approves.
    b.login("li").await;
    b.fill("#filter-state", "in_review").await;
    b.wait_text("#articles", "大堂饮水机的位置").await;
    b.js(
        "Array.from(document.querySelectorAll('#articles .article-row')).find(r => r.innerText.includes('大堂饮水机')).click();",
        vec![],
    )
    .await;
    b.click("#tab-review").await;
    b.wait_text("#review", "东侧").await;
    b.fill("#review-comment", "核对无误").await;
    b.screenshot("studio-review").await;
    b.click("#btn-approve").await;
    b.wait_text("#ed-status", "已发布").await;
    b.click("#tab-history").await;
    b.wait_text("#history", "核对无误").await;
    b.click("#tab-hittest").await;
    b.type_into("#hit-q", "饮水机在哪里").await;
    b.click("#hit-form button").await;
    b.wait_text("#hit-result", "终端会用 lobby-water 回答")
        .await;
    b.click("#tab-golden").await;
    b.wait_text("#golden", "通过").await;
    // Retire it, then bring it back by rolling back to version 1.
    b.click("#tab-history").await;
    b.tap("#history", "下线").await;
    b.wait_text("#ed-status", "已下线").await;
    b.tap("#history", "回滚到此版").await;
    b.wait_text("#ed-status", "已回滚").await;

    // The kiosk answers with it at once.
    b.goto(&app.http(&format!("/kiosk?kiosk=K001&token={token}")))
        .await;
    b.resize_viewport(1080, 1920).await;
    b.wait_text("#captions", "小安").await;
    b.type_into("#text-input", "饮水机在哪里").await;
    b.click("#text-form .send").await;
    b.wait_text("#article", "大堂饮水机的位置").await;
    b.wait_text("#article", "东侧").await;
    b.wait_text("#article", "lobby-water").await;
    b.screenshot("kiosk-article").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn markup_in_an_article_is_shown_as_text_at_the_kiosk_and_in_the_studio() {
    let Some(b) = browser(1080, 1920).await else {
        return;
    };
    let app = spawn_app().await;
    let editor = app.staff("wang", "content_editor").await;
    // An admin approves: 40 KB of new text shifts the ranking enough for the golden gate to
    // object, and an admin may override it with a reason (recorded).
    let reviewer = app.staff("li", "admin").await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    // Markup, an unbroken 400-character string, and a very long body (about 40 KB).
    let mut body = String::from(
        "保管箱业务说明。<script>window.__pwned=1</script>\n\n<img src=x onerror=\"window.__pwned=2\"> 请到三楼办理。\n\n",
    );
    body.push_str(&"A".repeat(400));
    for i in 1..=500 {
        body.push_str(&format!(
            "\n\n第{i}条：租用保管箱须本人携带有效身份证件办理，租期内请妥善保管钥匙。"
        ));
    }
    let (s, r) = app
        .post_json(
            "/v1/knowledge/articles",
            &editor,
            json!({"id": "safe-box", "title": "保险箱租用在哪里办", "audience": "customer",
                   "questions": ["保险箱在哪里租", "保险箱租用"], "body": &body}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = app
        .post_json(
            "/v1/knowledge/articles/safe-box/versions/1/submit",
            &editor,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = app
        .post_json(
            "/v1/knowledge/articles/safe-box/versions/1/approve",
            &reviewer,
            json!({"comment": "ok", "override_reason": "test: a very long body"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");

    b.goto(&app.http(&format!("/kiosk?kiosk=K001&token={token}")))
        .await;
    b.wait_text("#captions", "小安").await;
    b.type_into("#text-input", "保险箱在哪里租").await;
    b.click("#text-form .send").await;
    b.wait_text("#article", "<script>window.__pwned=1</script>")
        .await;
    b.wait_text("#article", "<img src=x onerror=").await;
    let probe = b
        .js(
            "return {pwned: typeof window.__pwned, imgs: document.querySelectorAll('#article img, #article script').length};",
            vec![],
        )
        .await;
    assert_eq!(probe["pwned"], "undefined", "{probe}");
    assert_eq!(probe["imgs"], 0, "{probe}");
    // The long body scrolls inside its panel: nothing runs off the screen sideways and the
    // text box stays on screen.
    b.wait_text("#article", "第500条").await;
    let layout = b
        .js(
            "const a = document.querySelector('#article'); const t = document.querySelector('#text-input').getBoundingClientRect();\
             return {wide: document.documentElement.scrollWidth > window.innerWidth, \
                     tall: document.documentElement.scrollHeight > window.innerHeight + 1, \
                     article_wide: a.scrollWidth > a.clientWidth + 1, \
                     input_visible: t.bottom <= window.innerHeight && t.top >= 0};",
            vec![],
        )
        .await;
    assert_eq!(layout["wide"], false, "{layout}");
    assert_eq!(
        layout["tall"], false,
        "the page itself never scrolls: {layout}"
    );
    assert_eq!(layout["article_wide"], false, "long words wrap: {layout}");
    assert_eq!(layout["input_visible"], true, "{layout}");
    b.screenshot("kiosk-article-markup-as-text").await;

    b.goto(&app.http("/studio")).await;
    b.login("wang").await;
    b.wait_text("#articles", "保险箱租用在哪里办").await;
    b.js(
        "Array.from(document.querySelectorAll('#articles .article-row')).find(r => r.innerText.includes('保险箱租用')).click();",
        vec![],
    )
    .await;
    b.wait_text("#ed-preview", "<script>window.__pwned=1</script>")
        .await;
    b.wait_text("#ed-preview", "onerror").await;
    let probe = b
        .js(
            "return {pwned: typeof window.__pwned, imgs: document.querySelectorAll('#ed-preview img, #ed-preview script').length};",
            vec![],
        )
        .await;
    assert_eq!(probe["pwned"], "undefined", "{probe}");
    assert_eq!(probe["imgs"], 0, "{probe}");
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_refused_microphone_falls_back_to_touch() {
    let Some(b) = browser(1920, 1080).await else {
        return;
    };
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    // Without an identity the page asks for one (a wrong token first).
    b.goto(&app.http("/kiosk")).await;
    b.type_into("#setup-id", "K001").await;
    b.type_into("#setup-token", "ck_wrong").await;
    b.tap("#overlay", "保存并连接").await;
    b.wait_text("#overlay", "令牌无效").await;
    b.type_into("#setup-token", &token).await;
    b.tap("#overlay", "保存并连接").await;
    b.wait_text("#choices", "取号排队").await;
    // The customer (or the kiosk's policy) refuses the microphone.
    b.js(
        "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));",
        vec![],
    )
    .await;
    b.click("#btn-mic").await;
    b.wait_text("#notice", "触屏").await;
    b.screenshot("kiosk-landscape-mic-refused").await;
    let disabled = b
        .js(
            "return document.querySelector('#btn-mic').disabled;",
            vec![],
        )
        .await;
    assert_eq!(disabled, true);
    // Touch still works.
    b.touch_still_works().await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_kiosk_speaks_with_moving_lips_and_streams_held_speech() {
    let Some(b) = browser(1080, 1920).await else {
        return;
    };
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    b.open_kiosk(&app, &token).await;
    // The greeting is spoken (`speaker` capability: the server's TTS streams PCM frames) and
    // the loudness of what plays moves the mouth.
    b.until(
        "the greeting to be played",
        "return Number(document.body.dataset.speechFrames || 0) > 0;",
        vec![],
    )
    .await;
    b.until(
        "speech to open the mouth",
        "return Number(document.querySelector('#avatar').dataset.speechMouth || 0) > 0.2;",
        vec![],
    )
    .await;
    // Hold the mic (Chromium's fake microphone plays a beep) for a few 100 ms frames.
    b.hold_mic(5).await;
    // The test server has no speech recognition: the kiosk says so and keeps touch.
    b.wait_text("#notice", "语音识别暂不可用，请点选或输入")
        .await;
    b.touch_still_works().await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_second_window_of_the_same_kiosk_pauses_the_first() {
    let Some(b) = browser(1080, 1920).await else {
        return;
    };
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    b.open_kiosk(&app, &token).await;
    let first = b.client.window().await.unwrap();
    // Same browser profile: the second tab finds the kiosk and its session, and resumes it.
    let second = b.client.new_window(true).await.unwrap();
    b.client.switch_to_window(second.handle).await.unwrap();
    b.goto(&app.http("/kiosk")).await;
    b.wait_text("#choices", "取号排队").await;
    b.client.switch_to_window(first).await.unwrap();
    b.wait_text("#overlay", "此会话已在其他窗口打开").await;
    b.screenshot("kiosk-replaced").await;
    // It stays paused (no reconnect loop) until someone asks for it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.wait_text("#overlay", "此会话已在其他窗口打开").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_conflicting_save_in_the_studio_keeps_what_the_editor_wrote() {
    let Some(b) = browser(1600, 1000).await else {
        return;
    };
    let app = spawn_app().await;
    app.staff("wang", "content_editor").await;
    let other = app.staff("zhao", "content_editor").await;

    b.goto(&app.http("/studio")).await;
    b.login("wang").await;
    b.fill("#filter-text", "opening-hours").await;
    b.wait_text("#articles", "网点营业时间").await;
    b.click("#articles .article-row").await;
    b.wait_text("#ed-title-bar", "网点营业时间").await;
    b.fill(
        "#ed-body",
        "周一至周五 9:00–17:00，周末 10:00–16:00。（王编辑的修改）",
    )
    .await;

    // Meanwhile a colleague saves a new version.
    let head = app
        .get_json("/v1/knowledge/articles/opening-hours", &other)
        .await;
    let mut draft = head["head"].clone();
    draft["body"] = json!("同事的修改。");
    let mut body = json!({"base_version": head["head"]["version"]});
    for k in [
        "title",
        "body",
        "summary",
        "questions",
        "tags",
        "audience",
        "branches",
        "effective_from",
        "effective_to",
    ] {
        body[k] = draft[k].clone();
    }
    let res = reqwest::Client::new()
        .put(app.http("/v1/knowledge/articles/opening-hours"))
        .bearer_auth(&other)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    b.click("#btn-save").await;
    b.wait_text("#ed-status", "保存冲突").await;
    let kept = b
        .js("return document.querySelector('#ed-body').value;", vec![])
        .await;
    assert!(kept.as_str().unwrap().contains("王编辑的修改"), "{kept}");

    // The text survives a reload too (autosaved on this device).
    b.client.refresh().await.unwrap();
    b.wait_text("#articles", "网点营业时间").await;
    b.fill("#filter-text", "opening-hours").await;
    b.click("#articles .article-row").await;
    b.wait_text("#restored", "未保存的修改").await;
    let kept = b
        .js("return document.querySelector('#ed-body').value;", vec![])
        .await;
    assert!(kept.as_str().unwrap().contains("王编辑的修改"), "{kept}");
    // The review tab shows what the colleague's version changes against the live one.
    b.click("#tab-review").await;
    b.wait_text("#review", "与线上 v1 的差异").await;
    b.wait_text("#review .diff", "同事的修改").await;
    b.screenshot("studio-review-diff").await;
    // The synonym dictionary round-trips through its editor.
    b.click("#tab-synonyms").await;
    b.until(
        "the synonyms to load",
        "return document.querySelector('#syn-text').value.includes('挂失');",
        vec![],
    )
    .await;
    b.click("#btn-syn-save").await;
    b.wait_text("#syn-status", "已保存").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_kiosk_reconnects_after_a_server_restart_and_resumes_its_session() {
    let Some(b) = browser(1080, 1920).await else {
        return;
    };
    let (db, _dir) = crate::helpers::fresh_database(crate::helpers::Engine::Sqlite).await;
    let app = crate::helpers::spawn_on(&db, &project_root(), |_| {}).await;
    let port = app.port;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    b.open_kiosk(&app, &token).await;
    let session = b
        .js(
            "return localStorage.getItem('concierge.session.K001');",
            vec![],
        )
        .await;
    assert!(session.as_str().is_some_and(|s| !s.is_empty()), "{session}");

    // The server goes away: the kiosk says it is reconnecting.
    app.stop().await;
    b.until(
        "the reconnecting banner",
        "const el = document.querySelector('#banner'); return !el.hidden && /重新连接|重启/.test(el.innerText);",
        vec![],
    )
    .await;
    b.screenshot("kiosk-reconnecting").await;

    // It comes back on the same address: the page resumes the same session by itself.
    let app = crate::helpers::spawn_on(&db, &project_root(), |s| {
        s.server.listen = format!("127.0.0.1:{port}");
    })
    .await;
    b.until(
        "the banner to go away",
        "return document.querySelector('#banner').hidden;",
        vec![],
    )
    .await;
    let resumed = b
        .js(
            "return localStorage.getItem('concierge.session.K001');",
            vec![],
        )
        .await;
    assert_eq!(resumed, session, "the same session");
    b.tap("#choices", "取号排队").await;
    b.until(
        "a reply after the tap",
        "return document.querySelectorAll('#captions .line.user').length >= 1 && document.querySelectorAll('#captions .line.bot').length >= 2;",
        vec![],
    )
    .await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_customer_speaks_into_the_kiosk_microphone_and_is_understood() {
    let Some(models) = models_dir("a_customer_speaks_into_the_kiosk_microphone") else {
        return;
    };
    // Chromium's fake microphone plays a fixture: 0.5 s of silence, 我要取号, 2.5 s of silence.
    let clip =
        concierge::speech::wav::read_wav(&project_root().join("tests/fixtures/audio/p_2.16k.wav"))
            .unwrap();
    let mut samples = vec![0i16; 8_000];
    samples.extend(clip.iter().map(|s| (s * 32767.0) as i16));
    samples.extend(vec![0i16; 40_000]);
    let wav = concierge::speech::tts::Pcm {
        sample_rate: 16_000,
        samples,
    }
    .to_wav_bytes();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mic.wav");
    std::fs::write(&file, wav).unwrap();
    let flag = format!(
        "--use-file-for-fake-audio-capture={}%noloop",
        file.display()
    );
    let Some(b) = browser_with(1080, 1920, &[flag]).await else {
        return;
    };
    let app = spawn_app_with(Engine::Sqlite, move |s| {
        s.speech.asr_backend = concierge::config::AsrBackend::Whisper;
        s.speech.models_dir = models;
    })
    .await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    b.open_kiosk(&app, &token).await;
    // Hold the mic while the clip plays (3.3 s of audio: 33 frames of 100 ms), then let go.
    b.hold_mic(33).await;
    // What the microphone heard is shown, understood, and answered. Recognition takes
    // about 0.1 s after the hold on an idle machine, 8 s with three busy loops per core;
    // CI runs this next to other tests' apps and browsers (it once took over 30 s there).
    b.wait_text_within(HEARING_PATIENCE, "#captions", "我要取号")
        .await;
    b.wait_text("#captions", "帮您取号").await;
    b.screenshot("kiosk-portrait-voice").await;
    b.close().await;
    app.stop().await;
}

/// In a browser whose own language is American English (where `<input type="date">` reads
/// mm/dd/yyyy and times carry AM/PM), the studio still shows and takes dates and times in
/// Chinese form with a 24-hour clock, in the branch's zone (Asia/Shanghai): the schedule
/// typed as 2030-01-02 and 14:30 is repeated as 2030年1月2日 14:30 and stored as 06:30 UTC;
/// a 12-hour time is refused; the version list shows `YYYY-MM-DD HH:mm`.
#[tokio::test]
async fn the_studio_shows_and_takes_chinese_24_hour_dates_in_an_en_us_browser() {
    let Some(b) = browser_with(
        1600,
        1000,
        &[
            "--lang=en-US".to_string(),
            "--accept-lang=en-US".to_string(),
        ],
    )
    .await
    else {
        return;
    };
    let app = spawn_app().await;
    app.staff("wang", "content_editor").await;
    app.staff("li", "content_reviewer").await;
    let editor = app_token(&app, "wang").await;
    let (s, saved) = crate::knowledge::call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(crate::knowledge::water_article()),
    )
    .await;
    assert_eq!(s, 201, "{saved}");
    let (s, r) = crate::knowledge::call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/1/submit",
        &editor,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let locale: Value = reqwest::get(app.http("/v1/locale"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(locale["time_zone"], "Asia/Shanghai", "{locale}");

    b.goto(&app.http("/studio")).await;
    // The premise: this browser formats the American way by itself.
    let own = b
        .js(
            "return [navigator.language, new Date(Date.UTC(2030, 0, 2, 6, 30)).toLocaleString()];",
            vec![],
        )
        .await;
    assert_eq!(own[0], "en-US", "{own}");
    b.login("li").await;
    b.fill("#filter-state", "in_review").await;
    b.wait_text("#articles", "大堂饮水机的位置").await;
    b.js(
        "Array.from(document.querySelectorAll('#articles .article-row')).find(r => r.innerText.includes('大堂饮水机')).click();",
        vec![],
    )
    .await;
    b.click("#tab-review").await;
    b.wait_text("#review", "东侧").await;
    // No native date or datetime pickers anywhere in the studio.
    let native = b
        .js(
            "return document.querySelectorAll('input[type=date], input[type=datetime-local], input[type=time]').length;",
            vec![],
        )
        .await;
    assert_eq!(native, 0);
    // A 12-hour time is refused, with the form to use.
    b.fill("#review-at-date", "2030-01-02").await;
    b.fill("#review-at-time", "2:30 PM").await;
    b.wait_text("#review-at-show", "HH:mm").await;
    b.click("#btn-approve").await;
    b.wait_text("#ed-status", "24 小时制").await;
    // A 24-hour time is repeated in full and scheduled.
    b.fill("#review-at-time", "14:30").await;
    b.wait_text("#review-at-show", "2030年1月2日 14:30").await;
    b.screenshot("studio-schedule").await;
    b.click("#btn-approve").await;
    b.wait_text("#ed-status", "将于 2030年1月2日 14:30 发布")
        .await;
    let reviewer = app_token(&app, "li").await;
    let v = app
        .get_json("/v1/knowledge/articles/lobby-water/versions/1", &reviewer)
        .await;
    let due = chrono::DateTime::parse_from_rfc3339("2030-01-02T06:30:00Z").unwrap();
    assert_eq!(v["publish_at"], due.timestamp_millis(), "{v}");
    assert_eq!(v["state"], "scheduled", "{v}");

    // The version list shows its creation time as the branch reads it.
    b.click("#tab-history").await;
    let created = v["created_at"].as_i64().unwrap();
    let shown = chrono::DateTime::from_timestamp_millis(created)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let text = b.wait_text("#history", &shown).await;
    assert!(!text.contains("AM") && !text.contains("PM"), "{text}");
    b.close().await;
    app.stop().await;
}
