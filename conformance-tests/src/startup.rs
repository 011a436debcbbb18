//! The start-up suite: the demo contract's environment variables, checked
//! against the demo *program*, as a newcomer runs it.
//!
//! The adapter suite serves the demo's router in process with a
//! configuration it builds; what the program does with its environment
//! (reading the variables, refusing bad values with one line on stderr,
//! warning about a random key, connecting Redis, binding the port, printing
//! `listening on http://127.0.0.1:PORT`) only shows when the program runs.
//! Each case starts it as a child process with exactly the variables it
//! sets (the rest of the environment is cleared), and stops it when done.
//!
//! Run it with [`startup_suite!`](crate::startup_suite) from a test file of
//! the adapter's crate, naming the demo example:
//!
//! ```text
//! conformance_tests::startup_suite!(demo_startup, example: "demo");
//! ```
//!
//! `cargo test` and `cargo nextest run` build a package's examples before
//! its tests, next to them (`target/<profile>/examples/`), which is where
//! [`Demo::example`] looks. The Redis case uses `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and fails with the demo's own error line when
//! nothing answers there.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::failure::{check, fail};
use crate::{Failure, Outcome};

/// How long a demo may take to stop on a bad value, or to print its
/// listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A valid `SESSION_SECRET` (128 hex digits), so that cases about other
/// variables draw no random-key warning.
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\
                      0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Another valid key, in the three spellings the contract accepts: hex,
/// URL-safe base64 without padding, standard base64 with it.
const OTHER_SECRET_HEX: &str = "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186\
                                abd0f51a3f6489aed3f81d42678cb1d6fb20456a8fb4d9fe23486d92b7dc0126";
const OTHER_SECRET_URL_SAFE: &str =
    "CzBVep_E6Q4zWH2ix-wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW-yBFao-02f4jSG2St9wBJg";
const OTHER_SECRET_STANDARD: &str =
    "CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW+yBFao+02f4jSG2St9wBJg==";
/// The same key in the other two base64 spellings: URL-safe padded, and
/// standard unpadded.
const OTHER_SECRET_URL_SAFE_PADDED: &str =
    "CzBVep_E6Q4zWH2ix-wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW-yBFao-02f4jSG2St9wBJg==";
const OTHER_SECRET_STANDARD_UNPADDED: &str =
    "CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW+yBFao+02f4jSG2St9wBJg";

/// A third valid key, which signed nothing: a previous key that does not
/// match.
const UNRELATED_SECRET: &str = "87da8140e97b677f3aa66e1d8e7ca9c5b8ed35da51821303974e2a118bc600be\
                                7ca923479caf864ed90e52a400f2c70d9532895a1538d909a4f889ec22dc6c2e";

/// The demo program under test.
#[derive(Debug, Clone)]
pub struct Demo {
    program: PathBuf,
}

impl Demo {
    /// The example `name` of the package whose tests are running, as cargo
    /// built it: `target/<profile>/examples/<name>`, found from the running
    /// test binary (`target/<profile>/deps/…`).
    ///
    /// # Errors
    ///
    /// A [`Failure`] saying where it looked when the program is not there.
    pub fn example(name: &str) -> Result<Self, Failure> {
        let test_binary = std::env::current_exe()?;
        let Some(profile_dir) = test_binary.parent().and_then(Path::parent) else {
            return Err(Failure::new(format!(
                "cannot find cargo's target directory from {}",
                test_binary.display()
            )));
        };
        let program = profile_dir
            .join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if !program.is_file() {
            return Err(Failure::new(format!(
                "the example {name:?} is not built at {}: `cargo test` and `cargo nextest run` \
                 build it before the tests, unless limited to some targets (`--test NAME`); \
                 then run `cargo build --example {name}` first",
                program.display()
            )));
        }
        Ok(Self { program })
    }

    /// The demo program at `path`.
    #[must_use]
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            program: path.into(),
        }
    }

    /// The program, to run with exactly `vars` in its environment.
    fn command(&self, vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Windows cannot open a socket without it.
        if let Some(root) = std::env::var_os("SystemRoot") {
            command.env("SystemRoot", root);
        }
        command
    }

    /// Runs the demo with `vars`, which must make it stop at start-up.
    fn run_to_exit(&self, vars: &[(&str, &str)]) -> Result<Exited, Failure> {
        let mut child = self.command(vars).spawn()?;
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (stdout, stderr) = (join(stdout), join(stderr));
        let Some(status) = status else {
            return Err(Failure::new(format!(
                "with {vars:?} the demo was still running after {START_TIMEOUT:?}: a bad value \
                 must stop it at start-up\n  stdout: {stdout:?}\n  stderr: {stderr:?}"
            )));
        };
        Ok(Exited {
            status,
            stdout,
            stderr,
        })
    }

    /// Starts the demo with `vars` and a free `PORT`, and waits for its
    /// listening line. The port is free when chosen but not reserved: when
    /// something else takes it first (the demo then stops with a `PORT:`
    /// line), another is tried, a few times.
    fn start(&self, vars: &[(&str, &str)]) -> Result<Started, Failure> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port()?;
            let port_text = port.to_string();
            let mut all = vars.to_vec();
            all.push(("PORT", &port_text));
            let mut child = self.command(&all).spawn()?;
            let stderr = read_all(child.stderr.take());
            let (lines, first_lines) = mpsc::channel();
            if let Some(stdout) = child.stdout.take() {
                std::thread::spawn(move || {
                    // Reads to the end even after the first line, so that
                    // the demo never writes into a closed pipe.
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let _ = lines.send(line);
                    }
                });
            }
            let mut started = Started {
                child,
                stderr: Some(stderr),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match first_lines.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let want = format!("listening on http://127.0.0.1:{port}");
                    if line != want {
                        let stderr = started.stop();
                        fail!(
                            "the demo's first line on stdout\n  found: {line:?}\n   want: \
                             {want:?}\n  stderr: {stderr:?}"
                        );
                    }
                    return Ok(started);
                }
                Err(_) => {
                    let stderr = started.stop();
                    if stderr.starts_with("PORT:") && attempts < 5 {
                        continue;
                    }
                    fail!(
                        "with {all:?} the demo printed no listening line within \
                         {START_TIMEOUT:?}\n  stderr: {stderr:?}"
                    )
                }
            }
        }
    }
}

/// A demo that stopped.
struct Exited {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A running demo; stopped (killed) when dropped.
struct Started {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    addr: SocketAddr,
}

impl Started {
    /// Stops the demo and returns what it wrote on stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().map(join).unwrap_or_default()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn read_all(pipe: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join(reader: JoinHandle<String>) -> String {
    reader.join().unwrap_or_default()
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, Failure> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Checks that `exited` failed with exactly one line on stderr that starts
/// with `var`.
fn one_line_naming(exited: &Exited, var: &str, vars: &[(&str, &str)]) -> Outcome {
    check!(
        !exited.status.success(),
        "with {vars:?} the demo exited successfully; a bad value must give a non-zero exit"
    );
    let lines: Vec<&str> = exited.stderr.lines().collect();
    check!(
        lines.len() == 1 && lines[0].starts_with(var),
        "with {vars:?} stderr must be exactly one line naming {var}\n  stderr: {:?}",
        exited.stderr
    );
    check!(
        !exited.stdout.contains("listening on"),
        "with {vars:?} the demo printed its listening line: {:?}",
        exited.stdout
    );
    Ok(())
}

/// Whether a socket bound on 127.0.0.2 can be reached here: then a
/// server bound on every address would answer there too.
fn loopback_127_0_0_2_works() -> bool {
    let Ok(listener) = std::net::TcpListener::bind(("127.0.0.2", 0)) else {
        return false;
    };
    listener.local_addr().is_ok_and(|addr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
    })
}

/// The cases, one function each, listed in [`STARTUP_CASES`].
pub mod cases {
    use super::{
        Demo, OTHER_SECRET_HEX, OTHER_SECRET_STANDARD, OTHER_SECRET_STANDARD_UNPADDED,
        OTHER_SECRET_URL_SAFE, OTHER_SECRET_URL_SAFE_PADDED, SECRET, UNRELATED_SECRET, free_port,
        one_line_naming,
    };
    use crate::client::Browser;
    use crate::failure::{check, check_eq, fail};
    use crate::{Failure, Outcome};

    /// Every bad value the contract names (odd hex, a 10-byte secret, an
    /// unknown store, an unreachable Redis, `SESSION_IDLE_SECS=abc` or `0`,
    /// `SESSION_COOKIE_SECURE=maybe`), and a few more, stops the demo with
    /// a non-zero exit and exactly one line on stderr naming the variable.
    pub fn bad_values_stop_the_demo_with_one_line_naming_the_variable(demo: &Demo) -> Outcome {
        let bad: &[(&str, &str)] = &[
            ("SESSION_SECRET", "abc"),
            ("SESSION_SECRET", "00112233445566778899"),
            ("SESSION_PREVIOUS_SECRETS", "xyz"),
            ("SESSION_STORE", "disk"),
            ("SESSION_IDLE_SECS", "abc"),
            ("SESSION_IDLE_SECS", "0"),
            ("SESSION_IDLE_SECS", "1.5"),
            ("SESSION_ABSOLUTE_SECS", "-5"),
            ("SESSION_ABSOLUTE_SECS", "0"),
            ("SESSION_ABSOLUTE_SECS", "abc"),
            // Booleans are exactly `true` or `false`.
            ("SESSION_COOKIE_SECURE", "maybe"),
            ("SESSION_COOKIE_SECURE", "TRUE"),
            ("SESSION_COOKIE_SECURE", "1"),
            ("PORT", "0"),
            ("PORT", "65536"),
            ("PORT", "http"),
        ];
        // A free port, so that a demo that wrongly accepts a bad value
        // starts there (and is stopped), not on the default 3000.
        let port = free_port()?.to_string();
        for &(var, value) in bad {
            let mut vars = vec![(var, value)];
            if var != "SESSION_SECRET" {
                vars.push(("SESSION_SECRET", SECRET));
            }
            if var != "PORT" {
                vars.push(("PORT", &port));
            }
            one_line_naming(&demo.run_to_exit(&vars)?, var, &vars)?;
        }
        // Nothing listens on port 1.
        let vars = [
            ("SESSION_STORE", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("SESSION_SECRET", SECRET),
            ("PORT", &port),
        ];
        one_line_naming(&demo.run_to_exit(&vars)?, "REDIS_URL", &vars)
    }

    /// A port already in use stops the demo with one line naming `PORT`,
    /// even with no `SESSION_SECRET` (whose warning must then not be a
    /// second line).
    pub fn a_port_in_use_is_one_line_naming_port(demo: &Demo) -> Outcome {
        let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = taken.local_addr()?.port().to_string();
        let vars = [("PORT", port.as_str())];
        one_line_naming(&demo.run_to_exit(&vars)?, "PORT", &vars)
    }

    /// With good values the demo prints exactly `listening on
    /// http://127.0.0.1:PORT` and serves; nothing goes to stderr.
    pub fn listening_line_then_serving(demo: &Demo) -> Outcome {
        let mut started = demo.start(&[("SESSION_SECRET", SECRET)])?;
        let browser = Browser::new(started.addr);
        check_eq!(browser.get("/views")?.body, "Views: 1", "GET /views");
        check_eq!(browser.get("/views")?.body, "Views: 2", "GET /views again");
        // Bound on 127.0.0.1 only: another loopback address is refused
        // (where 127.0.0.2 reaches this machine at all, as on Linux).
        if super::loopback_127_0_0_2_works() {
            let elsewhere = std::net::SocketAddr::from(([127, 0, 0, 2], started.addr.port()));
            check!(
                std::net::TcpStream::connect_timeout(&elsewhere, std::time::Duration::from_secs(1))
                    .is_err(),
                "the demo answers on {elsewhere}: it must bind 127.0.0.1 only"
            );
        }
        let stderr = started.stop();
        check_eq!(stderr, "", "stderr of a demo started with good values");
        Ok(())
    }

    /// Without `SESSION_SECRET` the demo serves on a random key and says so
    /// in one line on stderr: sessions will not survive a restart.
    pub fn no_secret_warns_once_and_serves(demo: &Demo) -> Outcome {
        let mut started = demo.start(&[])?;
        let browser = Browser::new(started.addr);
        check_eq!(browser.get("/views")?.body, "Views: 1", "GET /views");
        let stderr = started.stop();
        let lines: Vec<&str> = stderr.lines().collect();
        check!(
            lines.len() == 1 && lines[0].contains("SESSION_SECRET") && lines[0].contains("restart"),
            "without SESSION_SECRET stderr must be one warning naming it and saying sessions \
             will not survive a restart\n  stderr: {stderr:?}"
        );
        // The key is random: a session kept in its cookie does not survive
        // a restart (a fixed fallback key would read it).
        let vars = [("SESSION_STORE", "cookie")];
        let first = demo.start(&vars)?;
        let browser = Browser::new(first.addr);
        check_eq!(
            browser.get("/views")?.body,
            "Views: 1",
            "cookie store: GET /views"
        );
        check_eq!(
            browser.get("/views")?.body,
            "Views: 2",
            "cookie store: GET /views again"
        );
        let Some(id) = browser.cookie("id") else {
            fail!("the cookie store set no session cookie");
        };
        drop(first);
        let second = demo.start(&vars)?;
        let again = Browser::new(second.addr);
        again.set_cookie("id", &id);
        check_eq!(
            again.get("/views")?.body,
            "Views: 1",
            "cookie store without SESSION_SECRET: GET /views after a restart (a new random key)"
        );
        Ok(())
    }

    /// `SESSION_STORE=cookie` and `SESSION_STORE=redis` (on `REDIS_URL`)
    /// start and keep sessions.
    pub fn every_store_serves_sessions(demo: &Demo) -> Outcome {
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        for vars in [
            vec![("SESSION_STORE", "memory")],
            vec![("SESSION_STORE", "cookie")],
            vec![
                ("SESSION_STORE", "redis"),
                ("REDIS_URL", redis_url.as_str()),
            ],
        ] {
            let mut vars = vars;
            vars.push(("SESSION_SECRET", SECRET));
            let started = demo.start(&vars)?;
            let browser = Browser::new(started.addr);
            check_eq!(
                browser.get("/views")?.body,
                "Views: 1",
                "{vars:?}: GET /views"
            );
            check_eq!(
                browser.get("/views")?.body,
                "Views: 2",
                "{vars:?}: GET /views again"
            );
        }
        Ok(())
    }

    /// The attributes of the session cookie a new session of the demo gets
    /// with `vars` (and a good secret), lowercased, after the value.
    fn session_cookie_attributes(
        demo: &Demo,
        vars: &[(&str, &str)],
    ) -> Result<Vec<String>, Failure> {
        let mut vars = vars.to_vec();
        vars.push(("SESSION_SECRET", SECRET));
        let started = demo.start(&vars)?;
        let reply = Browser::new(started.addr).get("/views")?;
        let Some(cookie) = reply.set_cookie("id") else {
            fail!(
                "{vars:?}: GET /views set no session cookie: {:?}",
                reply.set_cookies()
            );
        };
        Ok(cookie
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect())
    }

    /// Good values take effect, as the session cookie shows: the idle
    /// timeout (3600 s by default) is its `Max-Age`, never past the absolute
    /// lifetime (86400 s by default), and `SESSION_COOKIE_SECURE=true` adds `Secure` (and `false`,
    /// the default, does not). Whatever the settings, the cookie has the
    /// contract's other attributes, `Path=/`, `HttpOnly` and
    /// `SameSite=Lax`, and nothing more.
    pub fn settings_take_effect(demo: &Demo) -> Outcome {
        for (vars, max_age, secure) in [
            (vec![], "max-age=3600", false),
            (vec![("SESSION_IDLE_SECS", "120")], "max-age=120", false),
            (
                vec![
                    ("SESSION_IDLE_SECS", "120"),
                    ("SESSION_ABSOLUTE_SECS", "90"),
                ],
                "max-age=90",
                false,
            ),
            // The absolute lifetime's default, 86400 s, caps a longer idle
            // timeout.
            (vec![("SESSION_IDLE_SECS", "90000")], "max-age=86400", false),
            (
                vec![("SESSION_COOKIE_SECURE", "true")],
                "max-age=3600",
                true,
            ),
            (
                vec![("SESSION_COOKIE_SECURE", "false")],
                "max-age=3600",
                false,
            ),
        ] {
            let mut attributes = session_cookie_attributes(demo, &vars)?;
            attributes.sort();
            let mut want = vec!["httponly", max_age, "path=/", "samesite=lax"];
            if secure {
                want.push("secure");
            }
            check_eq!(
                attributes,
                want,
                "{vars:?}: the session cookie's attributes (lower case, sorted)"
            );
        }
        Ok(())
    }

    /// Each store keeps sessions where it says, as a restart shows: with
    /// `memory` (the default, when `SESSION_STORE` is unset) a restarted
    /// demo has forgotten them, with `cookie` (all in the cookie) and
    /// `redis` (on `REDIS_URL`) the same browser goes on counting. The keys
    /// are read in each spelling, and a cookie made under a key that
    /// `SESSION_PREVIOUS_SECRETS` names is read and re-issued under
    /// `SESSION_SECRET`.
    pub fn each_store_keeps_sessions_where_it_says(demo: &Demo) -> Outcome {
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        for (store, after_restart) in [
            ("memory", "Views: 1"),
            ("", "Views: 1"),
            ("cookie", "Views: 3"),
            ("redis", "Views: 3"),
        ] {
            // `SESSION_STORE` left unset for "".
            fn with<'a>(
                store: &'a str,
                mut vars: Vec<(&'static str, &'a str)>,
            ) -> Vec<(&'static str, &'a str)> {
                if !store.is_empty() {
                    vars.push(("SESSION_STORE", store));
                }
                vars
            }
            let store_var = store;
            let with_store = |vars| with(store_var, vars);
            let store = if store.is_empty() { "(unset)" } else { store };
            let browser = {
                let vars = with_store(vec![
                    ("REDIS_URL", redis_url.as_str()),
                    ("SESSION_SECRET", SECRET),
                ]);
                let started = demo.start(&vars)?;
                let browser = Browser::new(started.addr);
                check_eq!(
                    browser.get("/views")?.body,
                    "Views: 1",
                    "{store}: GET /views"
                );
                check_eq!(browser.get("/views")?.body, "Views: 2", "{store}: again");
                browser
            };
            // A new key (in URL-safe base64), the old one as a previous key,
            // second in a list.
            let previous = format!("{UNRELATED_SECRET},{SECRET}");
            let restarted = demo.start(&with_store(vec![
                ("REDIS_URL", redis_url.as_str()),
                ("SESSION_SECRET", OTHER_SECRET_URL_SAFE),
                ("SESSION_PREVIOUS_SECRETS", previous.as_str()),
            ]))?;
            let again = Browser::new(restarted.addr);
            let Some(id) = browser.cookie("id") else {
                fail!("{store}: /views set no session cookie");
            };
            again.set_cookie("id", &id);
            let reply = again.get("/views")?;
            check_eq!(
                reply.body,
                after_restart,
                "{store}: GET /views after a restart, with the old key as a previous one"
            );
            if after_restart == "Views: 1" {
                continue;
            }
            // (With the cookie store every write sends a cookie anyway; the
            // reads under the new key alone below are the real check.)
            check!(
                reply.set_cookie("id").is_some(),
                "{store}: a cookie under a previous key was not re-issued"
            );
            drop(restarted);
            // Re-issued under the new key: read with that key alone, in each
            // other spelling, and still counting.
            let mut carried = again.cookie("id");
            for (secret, views) in [
                (OTHER_SECRET_HEX, 4),
                (OTHER_SECRET_STANDARD, 5),
                (OTHER_SECRET_URL_SAFE_PADDED, 6),
                (OTHER_SECRET_STANDARD_UNPADDED, 7),
            ] {
                let started = demo.start(&with_store(vec![
                    ("REDIS_URL", redis_url.as_str()),
                    ("SESSION_SECRET", secret),
                ]))?;
                let later = Browser::new(started.addr);
                if let Some(id) = &carried {
                    later.set_cookie("id", id);
                }
                check_eq!(
                    later.get("/views")?.body,
                    format!("Views: {views}"),
                    "{store}: GET /views with the re-issued cookie, SESSION_SECRET={secret}"
                );
                carried = later.cookie("id");
            }
        }
        Ok(())
    }
}

/// Every case of the start-up suite, in the order
/// [`startup_suite!`](crate::startup_suite) generates them.
pub const STARTUP_CASES: &[&str] = crate::__startup_cases!(__startup_registry!());

/// The start-up suite's case list, handed to the macro `$callback`: one
/// `name;` per case, a function of [`cases`].
#[doc(hidden)]
#[macro_export]
macro_rules! __startup_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            bad_values_stop_the_demo_with_one_line_naming_the_variable;
            a_port_in_use_is_one_line_naming_port;
            listening_line_then_serving;
            no_secret_warns_once_and_serves;
            every_store_serves_sessions;
            settings_take_effect;
            each_store_keeps_sessions_where_it_says;
        }
    };
}

/// The names of the list `__startup_cases!` hands it.
#[doc(hidden)]
#[macro_export]
macro_rules! __startup_registry {
    (() $( $name:ident ; )*) => {
        &[ $( stringify!($name) ),* ]
    };
}

/// Runs `case` against `demo`, or fails with why the demo is not there.
///
/// # Errors
///
/// The case's [`Failure`], or the one `demo` carries.
pub fn run(demo: Result<Demo, Failure>, case: fn(&Demo) -> Outcome) -> Outcome {
    case(&demo?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_example_is_a_failure_saying_where_it_looked() {
        let failure = Demo::example("no-such-demo").unwrap_err();
        assert!(failure.message().contains("no-such-demo"), "{failure}");
        assert!(failure.message().contains("examples"), "{failure}");
    }

    #[test]
    fn the_secret_is_a_valid_key() {
        assert!(session_core::Key::from_hex(SECRET).is_ok());
        let other = session_core::Key::parse(OTHER_SECRET_HEX).unwrap();
        for spelling in [
            OTHER_SECRET_URL_SAFE,
            OTHER_SECRET_STANDARD,
            OTHER_SECRET_URL_SAFE_PADDED,
            OTHER_SECRET_STANDARD_UNPADDED,
        ] {
            assert_eq!(session_core::Key::parse(spelling).unwrap(), other);
        }
        assert!(session_core::Key::parse(UNRELATED_SECRET).is_ok());
    }
}
