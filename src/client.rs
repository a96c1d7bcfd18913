//! The Incus client of every command (and of host-fact gathering).

/// The Incus client every command uses: the socket found by
/// [`anklume_executor::incus::socket_path`]; with `ANKLUME_TRACE_HTTP=1`,
/// every request and its status printed on stderr (escaped: paths carry
/// names from the plan).
pub fn incus() -> anklume_executor::Incus {
    let incus = anklume_executor::Incus::from_env();
    if std::env::var_os("ANKLUME_TRACE_HTTP").is_some_and(|v| v == "1") {
        incus.with_tracer(std::sync::Arc::new(|line: &str| {
            eprintln!("{}", anklume_term::display(line))
        }))
    } else {
        incus
    }
}
