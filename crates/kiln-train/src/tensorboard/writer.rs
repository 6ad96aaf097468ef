//! [`SummaryWriter`] (PyTorch's `torch.utils.tensorboard.SummaryWriter`) and the
//! lower-level [`EventFileWriter`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use super::error::{Result, TensorBoardError};
use super::proto::{
    Dim, Event, PluginData, Summary, SummaryMetadata, SummaryValue, TensorProto, TensorShapeProto,
    Value, What, DT_STRING, FILE_VERSION, TEXT_PLUGIN_NAME,
};
use super::record::write_record;

/// PyTorch's default `flush_secs`: buffered events reach the disk at least this often
/// (checked whenever an event is written) and on [`SummaryWriter::flush`] / drop.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(120);

/// The current time in seconds since the Unix epoch (0 if the system clock is before it).
pub fn system_wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One event file: TFRecord-framed `Event` protobufs behind a [`BufWriter`].
///
/// The file is named `events.out.tfevents.<unix seconds>.<hostname><suffix>` (the name
/// TensorFlow and PyTorch use; TensorBoard finds event files by the `tfevents` in their name).
/// Its first record is an `Event` carrying `file_version = "brain.Event:2"`.
pub struct EventFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    flush_interval: Duration,
    last_flush: Instant,
}

impl EventFileWriter {
    /// Creates `dir` (and its parents) if needed, then a new event file in it whose name and
    /// first event use `wall_time`. If a file of that name already exists (two writers in the
    /// same directory and second), `.<pid>.<n>` is appended to the name instead of
    /// overwriting it.
    pub fn create(
        dir: impl AsRef<Path>,
        filename_suffix: &str,
        wall_time: f64,
        flush_interval: Duration,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|source| TensorBoardError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let base = format!(
            "events.out.tfevents.{:010}.{}",
            wall_time.max(0.0) as u64,
            hostname()
        );
        let (path, file) = create_new_file(dir, &base, filename_suffix)?;
        let mut writer = EventFileWriter {
            path,
            out: BufWriter::new(file),
            flush_interval,
            last_flush: Instant::now(),
        };
        writer.write_event(&Event {
            wall_time,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.to_string())),
        })?;
        // Make the file readable as an (empty) run right away, as TensorFlow does.
        writer.flush()?;
        Ok(writer)
    }

    /// The path of the event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (buffered; flushed when the flush interval has passed).
    pub fn write_event(&mut self, event: &Event) -> Result<()> {
        write_record(&mut self.out, &event.encode_to_vec()).map_err(|e| self.write_error(e))?;
        if self.last_flush.elapsed() >= self.flush_interval {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes all buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| self.write_error(e))?;
        self.last_flush = Instant::now();
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> TensorBoardError {
        TensorBoardError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

impl fmt::Debug for EventFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFileWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Creates `dir/<base><suffix>`, or `dir/<base>.<pid>.<n><suffix>` if that exists already.
fn create_new_file(dir: &Path, base: &str, suffix: &str) -> Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut n = 0u32;
    loop {
        let name = if n == 0 {
            format!("{base}{suffix}")
        } else {
            format!("{base}.{pid}.{n}{suffix}")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(source) => return Err(TensorBoardError::CreateFile { path, source }),
        }
    }
}

/// The host name for event file names, with path separators replaced.
fn hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let name: String = name
        .chars()
        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// Path-safe form of a tag used as a directory name: `/` and `\` become `_`.
fn dir_component(tag: &str) -> String {
    tag.replace(['/', '\\'], "_")
}

/// The source of wall times for events (seconds since the Unix epoch).
type Clock = Box<dyn FnMut() -> f64 + Send>;

/// Writes TensorBoard event files: scalars, groups of scalars and text, with PyTorch's
/// `torch.utils.tensorboard.SummaryWriter` method names and on-disk layout.
///
/// Events are buffered and reach the disk on [`flush`](Self::flush), on
/// [`close`](Self::close) or drop, and at least every flush interval
/// ([`DEFAULT_FLUSH_INTERVAL`], checked when an event is written). Use `close` to see
/// errors of the final flush; drop ignores them.
///
/// ```
/// use kiln_train::tensorboard::SummaryWriter;
/// # let dir = tempfile::tempdir().unwrap();
/// # let log_dir = dir.path().join("run1");
/// let mut writer = SummaryWriter::new(&log_dir)?;
/// for step in 0..3 {
///     writer.add_scalar("loss/train", 1.0 / (step as f64 + 1.0), step)?;
/// }
/// writer.add_text("notes", "lr = 1e-3", 0)?;
/// writer.close()?;
/// # Ok::<(), kiln_train::tensorboard::TensorBoardError>(())
/// ```
pub struct SummaryWriter {
    log_dir: PathBuf,
    file: EventFileWriter,
    /// Writers of the `add_scalars` runs, keyed by their directory name under `log_dir`.
    scalars_runs: BTreeMap<String, EventFileWriter>,
    clock: Clock,
    filename_suffix: String,
    flush_interval: Duration,
}

/// Options for a [`SummaryWriter`]; from [`SummaryWriter::builder`].
pub struct SummaryWriterBuilder {
    log_dir: PathBuf,
    filename_suffix: String,
    flush_interval: Duration,
    clock: Option<Clock>,
}

impl SummaryWriterBuilder {
    /// Appends `suffix` to every event file name (PyTorch's `filename_suffix`).
    pub fn filename_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.filename_suffix = suffix.into();
        self
    }

    /// How long events may stay buffered before a write flushes them (PyTorch's
    /// `flush_secs`); [`Duration::ZERO`] flushes after every event.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Takes event wall times (and the time in file names) from `clock` instead of the
    /// system clock, e.g. for reproducible files in tests. `clock` returns seconds since the
    /// Unix epoch and is called once per event (once per `add_scalars` call).
    pub fn wall_clock(mut self, clock: impl FnMut() -> f64 + Send + 'static) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Creates the log directory (if needed) and the event file.
    pub fn build(self) -> Result<SummaryWriter> {
        let mut clock = self.clock.unwrap_or_else(|| Box::new(system_wall_time));
        let file = EventFileWriter::create(
            &self.log_dir,
            &self.filename_suffix,
            clock(),
            self.flush_interval,
        )?;
        Ok(SummaryWriter {
            log_dir: self.log_dir,
            file,
            scalars_runs: BTreeMap::new(),
            clock,
            filename_suffix: self.filename_suffix,
            flush_interval: self.flush_interval,
        })
    }
}

impl fmt::Debug for SummaryWriterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SummaryWriterBuilder")
            .field("log_dir", &self.log_dir)
            .field("filename_suffix", &self.filename_suffix)
            .field("flush_interval", &self.flush_interval)
            .field("custom_clock", &self.clock.is_some())
            .finish()
    }
}

impl SummaryWriter {
    /// Creates `log_dir` (and parents) if needed and a new event file in it, with the
    /// default options.
    pub fn new(log_dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder(log_dir).build()
    }

    /// Options: file name suffix, flush interval, wall clock.
    pub fn builder(log_dir: impl AsRef<Path>) -> SummaryWriterBuilder {
        SummaryWriterBuilder {
            log_dir: log_dir.as_ref().to_path_buf(),
            filename_suffix: String::new(),
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            clock: None,
        }
    }

    /// The log directory (the run directory TensorBoard shows).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The path of this writer's main event file.
    pub fn file_path(&self) -> &Path {
        self.file.path()
    }

    /// Logs one scalar. As in PyTorch, `value` is stored as a 32-bit float
    /// (`Summary.Value.simple_value`), so it is rounded to the nearest `f32`.
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        let wall_time = (self.clock)();
        self.file
            .write_event(&scalar_event(tag, value, step, wall_time))
    }

    /// Logs several related scalars on one chart, like PyTorch's `add_scalars`: each
    /// `(sub_tag, value)` goes to its own run directory `<log_dir>/<main_tag>_<sub_tag>`
    /// under the tag `main_tag`, so TensorBoard draws one line per sub-tag on the
    /// `main_tag` chart. (`/` and `\` in the directory name become `_`.)
    pub fn add_scalars(&mut self, main_tag: &str, values: &[(&str, f64)], step: i64) -> Result<()> {
        let wall_time = (self.clock)();
        for &(sub_tag, value) in values {
            let run = format!("{}_{}", dir_component(main_tag), dir_component(sub_tag));
            let writer = match self.scalars_runs.entry(run) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let dir = self.log_dir.join(e.key());
                    e.insert(EventFileWriter::create(
                        dir,
                        &self.filename_suffix,
                        wall_time,
                        self.flush_interval,
                    )?)
                }
            };
            writer.write_event(&scalar_event(main_tag, value, step, wall_time))?;
        }
        Ok(())
    }

    /// Logs a text (rendered as Markdown by TensorBoard's text plugin). As in PyTorch, the
    /// value is a `DT_STRING` tensor of shape `[1]` under the tag `<tag>/text_summary`.
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<()> {
        let wall_time = (self.clock)();
        let value = SummaryValue {
            tag: format!("{tag}/text_summary"),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: TEXT_PLUGIN_NAME.to_string(),
                    // A serialized `TextPluginData { version: 0 }` is empty.
                    content: Vec::new(),
                }),
                ..Default::default()
            }),
            value: Some(Value::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShapeProto {
                    dim: vec![Dim { size: 1 }],
                }),
                string_val: vec![text.as_bytes().to_vec()],
            })),
        };
        self.file
            .write_event(&summary_event(value, step, wall_time))
    }

    /// Writes all buffered events of all this writer's files to disk.
    pub fn flush(&mut self) -> Result<()> {
        let mut first_err = self.file.flush().err();
        for writer in self.scalars_runs.values_mut() {
            if let Err(e) = writer.flush() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Flushes and closes all files, returning the first error (drop does the same but
    /// ignores errors).
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }
}

impl Drop for SummaryWriter {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `close` reports them.
        let _ = self.flush();
    }
}

impl fmt::Debug for SummaryWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SummaryWriter")
            .field("log_dir", &self.log_dir)
            .field("file", &self.file.path())
            .field(
                "scalars_runs",
                &self.scalars_runs.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn summary_event(value: SummaryValue, step: i64, wall_time: f64) -> Event {
    Event {
        wall_time,
        step,
        what: Some(What::Summary(Summary { value: vec![value] })),
    }
}

fn scalar_event(tag: &str, value: f64, step: i64, wall_time: f64) -> Event {
    summary_event(
        SummaryValue {
            tag: tag.to_string(),
            metadata: None,
            value: Some(Value::SimpleValue(value as f32)),
        },
        step,
        wall_time,
    )
}
