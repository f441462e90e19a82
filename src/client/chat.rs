//! `concierge chat`: a terminal kiosk. It speaks the kiosk protocol exactly as a kiosk screen
//! does, answers device requests from the simulated devices of `kiosk-adapter`, keeps its
//! session id in a file, and reconnects (resuming the session) when the server goes away,
//! e.g. across a restart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kiosk_protocol::{Choice, ClientMessage, ErrorCode, PeerRole, ServerMessage, Ui};
use kiosk_sim::SimulatedDevices;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::kiosk_ws_url;

/// `concierge chat`: one terminal acting as a kiosk screen.
#[derive(clap::Args)]
pub struct ChatArgs {
    /// The Concierge server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// This terminal's kiosk id.
    #[arg(long, env = "CONCIERGE_KIOSK")]
    pub kiosk: String,
    /// The kiosk's token (from `concierge kiosk register`).
    #[arg(long, env = "CONCIERGE_KIOSK_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where the session id is kept so a restarted chat resumes its session.
    #[arg(long, value_name = "FILE")]
    pub session_file: Option<PathBuf>,
    /// Say this WAV file (16 kHz mono PCM16) as a customer turn, before reading the
    /// terminal; repeat for several turns. `/audio FILE` does the same at the prompt.
    #[arg(long, value_name = "FILE")]
    pub audio: Vec<PathBuf>,
    /// Ask for the bot's voice and save each reply as a WAV file in `--voice-dir` (on with
    /// `--audio`).
    #[arg(long)]
    pub voice: bool,
    /// Where the bot's spoken replies are saved.
    #[arg(long, value_name = "DIR", default_value = "data/chat-voice")]
    pub voice_dir: PathBuf,
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

enum SpeakError {
    Io(String),
    Gone,
}

/// Streams a WAV file as one utterance: `audio.start`, 100 ms frames (paced at ten times
/// real time, the most a server accepts), a second of silence so the server hears the end,
/// `audio.end`. Returns the clip's length in seconds.
async fn speak_file<S>(tx: &mut S, path: &std::path::Path) -> Result<f64, SpeakError>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let samples =
        crate::speech::wav::read_wav(path).map_err(|e| SpeakError::Io(format!("{e:#}")))?;
    let mut pcm: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32768.0).clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    pcm.extend(std::iter::repeat_n(0u8, 32_000));
    let start = ClientMessage::AudioStart {
        sample_rate: kiosk_protocol::AUDIO_SAMPLE_RATE,
    };
    send(tx, &start).await.map_err(|_| SpeakError::Gone)?;
    for frame in pcm.chunks(FRAME_BYTES) {
        tx.send(Message::Binary(frame.to_vec().into()))
            .await
            .map_err(|_| SpeakError::Gone)?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    send(tx, &ClientMessage::AudioEnd)
        .await
        .map_err(|_| SpeakError::Gone)?;
    Ok(samples.len() as f64 / 16_000.0)
}

/// How long chat waits for replies after its input ends (piped input).
const DRAIN_AFTER_EOF: Duration = Duration::from_millis(1500);

enum Next {
    Reconnect,
    Exit(ExitCode),
}

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let url = kiosk_ws_url(&args.url);
    let connector = args.tls.connector()?;
    let session_file = args
        .session_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("data/chat-{}.session", args.kiosk)));
    let mut session_id = std::fs::read_to_string(&session_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let devices = Arc::new(SimulatedDevices::new());
    let (line_tx, mut lines) = mpsc::channel::<Option<String>>(64);
    let scripted: Vec<String> = args
        .audio
        .iter()
        .map(|f| format!("/audio {}", f.display()))
        .collect();
    tokio::spawn(async move {
        for line in scripted {
            if line_tx.send(Some(line)).await.is_err() {
                return;
            }
        }
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if line_tx.send(Some(line)).await.is_err() {
                return;
            }
        }
        let _ = line_tx.send(None).await;
    });
    let mut chat = Chat {
        args: &args,
        session_file,
        devices,
        choices: Vec::new(),
        eof: false,
        awaiting: None,
        voice: None,
        voice_clips: 0,
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        match connector.connect(&url).await {
            Ok(ws) => {
                backoff = Duration::from_millis(500);
                match chat.converse(ws, &mut session_id, &mut lines).await {
                    Next::Exit(code) => return Ok(code),
                    Next::Reconnect => {}
                }
            }
            Err(e) => {
                if chat.eof {
                    println!("[无法连接 {url}：{e}]");
                    return Ok(ExitCode::FAILURE);
                }
                println!("[无法连接 {url}：{e}；{} 秒后重试]", backoff.as_secs_f32());
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

struct Chat<'a> {
    args: &'a ChatArgs,
    session_file: PathBuf,
    devices: Arc<SimulatedDevices>,
    choices: Vec<Choice>,
    eof: bool,
    /// Set while a reply is owed: input waits, so a script of lines plays turn by turn.
    awaiting: Option<tokio::time::Instant>,
    /// The bot's voice being received: turn, sample rate, PCM16 bytes.
    voice: Option<(String, u32, Vec<u8>)>,
    /// Clips saved so far (numbers the files: one turn may speak twice).
    voice_clips: usize,
}

/// Audio frames of 100 ms at 16 kHz, as a kiosk microphone sends them.
const FRAME_BYTES: usize = 3200;

/// How long chat holds input back while waiting for a reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

type Ws = kiosk_connect::Ws;

impl Chat<'_> {
    async fn converse(
        &mut self,
        ws: Ws,
        session_id: &mut Option<String>,
        lines: &mut mpsc::Receiver<Option<String>>,
    ) -> Next {
        let (mut tx, mut rx) = ws.split();
        let mut capabilities = vec![
            "text".to_string(),
            "choices".to_string(),
            "audio".to_string(),
        ];
        if self.args.voice || !self.args.audio.is_empty() {
            capabilities.push("speaker".into());
        }
        capabilities.extend(SimulatedDevices::capabilities());
        let hello = ClientMessage::Hello {
            kiosk_id: self.args.kiosk.clone(),
            token: Some(self.args.token.clone()),
            session_id: session_id.clone(),
            role: PeerRole::Screen,
            capabilities,
        };
        if send(&mut tx, &hello).await.is_err() {
            return Next::Reconnect;
        }
        // The welcome and the opening (or resumed) reply come first.
        self.awaiting = Some(tokio::time::Instant::now() + REPLY_WAIT);
        loop {
            let awaiting = self
                .awaiting
                .filter(|until| *until > tokio::time::Instant::now());
            let waited = async {
                match awaiting {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            let drain = async {
                if self.eof && awaiting.is_none() {
                    tokio::time::sleep(DRAIN_AFTER_EOF).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                frame = rx.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(b))) => {
                            if let Some((_, _, pcm)) = self.voice.as_mut() {
                                if pcm.len() < 64 << 20 {
                                    pcm.extend_from_slice(&b);
                                }
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            if self.eof {
                                return Next::Exit(ExitCode::SUCCESS);
                            }
                            println!("[连接断开，正在重连…]");
                            return Next::Reconnect;
                        }
                        Some(Ok(_)) => continue,
                    };
                    let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else {
                        println!("[收到无法识别的消息]");
                        continue;
                    };
                    if let Some(next) = self.show(msg, session_id, &mut tx).await {
                        return next;
                    }
                }
                _ = waited => {
                    self.awaiting = None;
                }
                line = lines.recv(), if !self.eof && awaiting.is_none() => {
                    let Some(Some(line)) = line else {
                        self.eof = true;
                        continue;
                    };
                    if let Some(next) = self.typed(line.trim(), session_id, &mut tx).await {
                        return next;
                    }
                }
                _ = drain => {
                    let _ = tx.send(Message::Close(None)).await;
                    return Next::Exit(ExitCode::SUCCESS);
                }
            }
        }
    }

    /// A line typed at the terminal: a `/command`, a choice number, or words to say; `Some`
    /// ends the connection.
    async fn typed<S>(
        &mut self,
        line: &str,
        session_id: &mut Option<String>,
        tx: &mut S,
    ) -> Option<Next>
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        if line.is_empty() {
            return None;
        }
        if let Some(file) = line.strip_prefix("/audio ") {
            match speak_file(tx, std::path::Path::new(file.trim())).await {
                Ok(secs) => {
                    println!("[说话：{}（{secs:.1} 秒）]", file.trim());
                    self.awaiting = Some(tokio::time::Instant::now() + REPLY_WAIT * 3);
                }
                Err(SpeakError::Io(e)) => println!("[无法读取 {}：{e}]", file.trim()),
                Err(SpeakError::Gone) => {
                    println!("[连接断开，正在重连…]");
                    return Some(Next::Reconnect);
                }
            }
            return None;
        }
        let msg = if line == "/quit" {
            ClientMessage::SessionClose {
                reason: Some("customer_left".into()),
            }
        } else if line == "/new" {
            *session_id = None;
            let _ = std::fs::remove_file(&self.session_file);
            println!("[开始新会话]");
            return Some(Next::Reconnect);
        } else if let Some(rest) = line.strip_prefix("/fail ") {
            let mut parts = rest.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(device), Some(code)) => {
                    self.devices.fail_next(device, code);
                    println!("[模拟设备：{device} 的下一次调用将失败（{code}）]");
                }
                _ => println!("[用法：/fail 设备 错误码，例如 /fail queue_printer paper_out]"),
            }
            return None;
        } else if let Some(choice) = line
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.choices.get(i))
        {
            println!("[点选：{}]", choice.label);
            ClientMessage::UserChoice {
                value: choice.value.clone(),
            }
        } else {
            ClientMessage::UserText {
                text: line.to_string(),
            }
        };
        if send(tx, &msg).await.is_err() {
            println!("[连接断开，正在重连…]");
            return Some(Next::Reconnect);
        }
        self.awaiting = Some(tokio::time::Instant::now() + REPLY_WAIT);
        None
    }

    /// Prints a server message (and answers device calls); `Some` ends the connection.
    async fn show<S>(
        &mut self,
        msg: ServerMessage,
        session_id: &mut Option<String>,
        tx: &mut S,
    ) -> Option<Next>
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        match msg {
            ServerMessage::Welcome {
                session_id: sid,
                resumed,
                ..
            } => {
                if let Some(sid) = sid {
                    if let Some(dir) = self.session_file.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    let _ = std::fs::write(&self.session_file, &sid);
                    println!(
                        "[已连接，会话 {sid}{}]",
                        if resumed { "（已恢复）" } else { "" }
                    );
                    *session_id = Some(sid);
                }
            }
            ServerMessage::BotSay { text, ui, .. } => {
                self.awaiting = None;
                println!("小安：{text}");
                self.show_ui(ui.as_ref());
            }
            ServerMessage::UiShow(ui) => self.show_ui(Some(&ui)),
            ServerMessage::AsrPartial { text } => println!("[识别中] {text}"),
            ServerMessage::BotAudio {
                turn_id,
                sample_rate,
                ..
            } => self.voice = Some((turn_id, sample_rate, Vec::new())),
            ServerMessage::BotAudioEnd { turn_id } => self.save_voice(&turn_id),
            ServerMessage::BotStop { .. } => println!("[播报被打断]"),
            ServerMessage::AsrFinal { text } => println!("[识别结果] {text}"),
            ServerMessage::DeviceInvoke {
                call_id,
                device,
                action,
                args,
                ..
            } => {
                let result = self.devices.handle(&call_id, &device, &action, &args);
                match &result {
                    Ok(_) => println!("[设备] {device}.{action} 完成（模拟）"),
                    Err(e) => println!("[设备] {device}.{action} 失败：{}（模拟）", e.code),
                }
                let (ok, data, error) = match result {
                    Ok(v) => (true, Some(v), None),
                    Err(e) => (false, None, Some(e)),
                };
                if send(
                    tx,
                    &ClientMessage::DeviceResult {
                        call_id,
                        ok,
                        data,
                        error,
                    },
                )
                .await
                .is_err()
                {
                    return Some(Next::Reconnect);
                }
            }
            ServerMessage::AgentSay { text } => {
                println!("工作人员：{text}");
            }
            ServerMessage::Handoff {
                kind,
                ticket_number,
                status,
                call_link,
            } => {
                println!(
                    "[转人工] {kind:?} 工单 {ticket_number} 状态 {status}{}",
                    call_link
                        .map(|l| format!(" 视频链接 {l}"))
                        .unwrap_or_default()
                );
            }
            ServerMessage::SessionEnd { reason } => {
                if reason == "shutdown" {
                    println!("[服务器正在重启，稍后自动恢复会话…]");
                    return Some(Next::Reconnect);
                }
                println!("[会话结束：{reason}]");
                if reason != "replaced" {
                    *session_id = None;
                    let _ = std::fs::remove_file(&self.session_file);
                }
                return Some(Next::Exit(ExitCode::SUCCESS));
            }
            ServerMessage::Error { code, message } => {
                self.awaiting = None;
                println!("[错误 {}] {message}", code.as_str());
                if matches!(
                    code,
                    ErrorCode::Unauthorized | ErrorCode::UnknownKiosk | ErrorCode::SessionForbidden
                ) {
                    return Some(Next::Exit(ExitCode::FAILURE));
                }
            }
            ServerMessage::Pong { .. } => {}
        }
        None
    }

    /// Saves the bot's voice for `turn_id` as a WAV file and says where.
    fn save_voice(&mut self, turn_id: &str) {
        let Some((turn, rate, pcm)) = self.voice.take() else {
            return;
        };
        if turn != turn_id || pcm.is_empty() {
            return;
        }
        let clip = crate::speech::tts::Pcm {
            sample_rate: rate,
            samples: pcm
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        };
        let dir = &self.args.voice_dir;
        self.voice_clips += 1;
        let path = dir.join(format!(
            "{}-{:03}.wav",
            &turn_id[..turn_id.len().min(8)],
            self.voice_clips
        ));
        match std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, clip.to_wav_bytes()))
        {
            Ok(()) => println!(
                "[语音回复 {:.1} 秒：{}]",
                clip.duration_ms() as f64 / 1000.0,
                path.display()
            ),
            Err(e) => println!("[语音回复无法保存到 {}：{e}]", path.display()),
        }
    }

    fn show_ui(&mut self, ui: Option<&Ui>) {
        let Some(ui) = ui else {
            self.choices.clear();
            return;
        };
        if ui.sensitive {
            println!("[屏幕显示（敏感信息，不播报）]");
        }
        for f in &ui.fields {
            println!("  {}：{}", f.label, f.value.as_deref().unwrap_or(""));
        }
        if let Some(a) = &ui.article {
            println!("[屏幕显示《{}》（{} 第{}版）]", a.title, a.id, a.version);
            for line in a.body.lines().filter(|l| !l.trim().is_empty()) {
                println!("  {line}");
            }
        }
        self.choices = ui.choices.clone();
        for (i, c) in self.choices.iter().enumerate() {
            println!("  [{}] {}", i + 1, c.label);
        }
    }
}

async fn send<S>(tx: &mut S, msg: &ClientMessage) -> Result<(), String>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = serde_json::to_string(msg).expect("client messages serialize");
    tx.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}
