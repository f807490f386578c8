//! A closed stdout ends the command quietly (exit 0) instead of with a panic.

use super::exit;

/// A closed stdout (`b24sync lookup ... | head -3`) ends the command quietly with exit 0, as
/// for ripgrep, instead of `println!`'s panic "failed printing to stdout: Broken pipe"
/// (exit 101). Done once here rather than at every `println!`.
///
/// Why a panic hook and not `signal(SIGPIPE, SIG_DFL)` (what `ls` gets from C): Rust starts
/// with SIGPIPE ignored so that a write to a closed *socket* is an ordinary error. Not every
/// socket write is protected otherwise (`writev`, used for vectored writes by hyper and
/// rustls, has no MSG_NOSIGNAL), so restoring the signal could kill a sync without a word
/// when Bitrix24 or SQL Server drops a connection mid-write. The hook covers every
/// platform (Windows has no SIGPIPE) and touches nothing but this one panic.
pub(super) fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout_panic(info.payload()) {
            // Nobody reads what is left to print; the work already done stays done (a sync
            // reports on stderr, and every batch it wrote is committed).
            std::process::exit(exit::OK as i32);
        }
        default_hook(info);
    }));
}

/// Whether a panic is `print!`/`println!` failing because the reader of stdout went away.
/// std's message is "failed printing to stdout: {io error}"; the io error's text is the
/// system's (localised on Windows), its code is not: EPIPE (32) on Unix, ERROR_NO_DATA
/// (232) or ERROR_BROKEN_PIPE (109) on Windows.
fn is_closed_stdout_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    let Some(error) = msg.strip_prefix("failed printing to stdout: ") else {
        return false;
    };
    let code = if cfg!(windows) {
        ["(os error 232)", "(os error 109)"].as_slice()
    } else {
        ["(os error 32)"].as_slice()
    };
    code.iter().any(|c| error.ends_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_print_to_a_closed_stdout_is_taken_for_a_closed_pipe() {
        let epipe = std::io::Error::from_raw_os_error(if cfg!(windows) { 232 } else { 32 });
        let msg = format!("failed printing to stdout: {epipe}");
        assert!(is_closed_stdout_panic(&msg), "{msg}");
        let full_disk = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(28)
        );
        assert!(!is_closed_stdout_panic(&full_disk), "{full_disk}");
        let stderr = format!("failed printing to stderr: {epipe}");
        assert!(!is_closed_stdout_panic(&stderr));
        assert!(!is_closed_stdout_panic(&"index out of bounds"));
        assert!(!is_closed_stdout_panic(&7_u8));
    }
}
