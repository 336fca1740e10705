//! Where a task panicked.
//!
//! `catch_unwind` hands back only the panic's payload; the location and the
//! backtrace exist only inside the panic hook. So a process-wide hook is
//! installed once: while a thread runs a task it records them (for the
//! task's `TaskError::traceback`) instead of printing; on every other thread
//! it defers to the hook that was there before, so nothing else changes.
use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::sync::Once;

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TASK.with(Cell::get) {
                previous(info);
                return;
            }
            let location = info.location().map_or_else(|| "an unknown location".to_owned(), |l| l.to_string());
            let backtrace = Backtrace::capture();
            let text = match backtrace.status() {
                BacktraceStatus::Captured => format!("panicked at {location}\n{backtrace}"),
                _ => format!("panicked at {location}"),
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Marks the current thread as running a task until dropped.
pub(crate) struct TaskScope(());

impl TaskScope {
    pub(crate) fn enter() -> Self {
        install_hook();
        IN_TASK.with(|t| t.set(true));
        LAST_PANIC.with(|p| p.borrow_mut().take());
        TaskScope(())
    }
}

impl Drop for TaskScope {
    fn drop(&mut self) {
        IN_TASK.with(|t| t.set(false));
    }
}

/// The location (and backtrace, when `RUST_BACKTRACE` asks for one) of the
/// last panic recorded on this thread.
pub(crate) fn take_traceback() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}

/// The text of a panic's payload (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the task panicked with a payload that is not a string".to_owned()
    }
}
