//! The terminal: size, a password prompt without echo, a progress line, and the split
//! screen of `chat chat` (incoming messages scroll above, the prompt stays on the last line)
//! made with a scroll region, so it needs no terminal library and leaves typing to the
//! terminal's own line editing.

use std::io::{IsTerminal, Write};

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Rows of the terminal on stdout, if it is one.
pub fn rows() -> Option<u16> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer it is given.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 2).then_some(size.ws_row)
}

/// Reads a password: from the terminal without echo, else a line of stdin.
pub fn read_password(prompt: &str) -> std::io::Result<String> {
    let tty = stdin_is_tty();
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if tty {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios they fill in themselves.
        unsafe {
            libc::tcgetattr(libc::STDIN_FILENO, &mut saved);
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet);
        }
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if tty {
        // SAFETY: restores what tcgetattr read above.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A one-line progress report on stderr, redrawn in place; silent when stderr is not a
/// terminal (scripts read stdout, and logs should not fill with redraws).
pub struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    pub fn new() -> Self {
        Self { enabled: stderr_is_tty(), drawn: false }
    }

    pub fn show(&mut self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
            self.drawn = true;
        }
    }

    pub fn finish(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Output of the interactive chat. On a terminal: lines scroll in the region above the
/// last row, where the prompt and what is being typed stay. Elsewhere: plain lines.
pub struct Screen {
    rows: Option<u16>,
    prompt: String,
}

impl Screen {
    pub fn new(prompt: String) -> Self {
        let rows = if stdout_is_tty() && stdin_is_tty() { rows() } else { None };
        let screen = Self { rows, prompt };
        if let Some(rows) = screen.rows {
            // Scroll region: every row but the last; then the prompt on the last row.
            print!("\x1b[2J\x1b[1;{}r\x1b[{rows};1H{}", rows - 1, screen.prompt);
            let _ = std::io::stdout().flush();
        }
        screen
    }

    /// A line in the message area, leaving the prompt and the typed text where they are.
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        match self.rows {
            // Save the cursor, write at the bottom of the region (it scrolls), restore.
            Some(rows) => {
                let _ = write!(out, "\x1b7\x1b[{};1H\n{text}\x1b8", rows - 1);
            }
            None => {
                let _ = writeln!(out, "{text}");
            }
        }
        let _ = out.flush();
    }

    /// After Enter: the typed line is gone from the prompt row.
    pub fn clear_prompt(&self) {
        if let Some(rows) = self.rows {
            print!("\x1b[{rows};1H\x1b[2K{}", self.prompt);
            let _ = std::io::stdout().flush();
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Some(rows) = self.rows {
            println!("\x1b[r\x1b[{rows};1H");
            let _ = std::io::stdout().flush();
        }
    }
}

/// `YYYY-MM-DD HH:MM` in UTC from milliseconds since the epoch.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_827_696_000), "2000-02-29 12:34");
        assert_eq!(format_time(1_795_422_301_353), "2026-11-23 08:25");
    }
}
