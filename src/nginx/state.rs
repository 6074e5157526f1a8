//! The state of one nginx request on the event loop, and every transition of it.
//!
//! Three facts make up the state, each an enum (they change independently: the client can
//! go away while a task runs or while we wait for it, the head goes out during either):
//! where the application's task stands ([`Task`]), whether the response head went out
//! ([`Head`]), and what became of the client ([`Client`]). Only the methods of [`State`]
//! change them.

use crate::ffi::ngx::ngx_int_t;

/// Where the application's work stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Nothing posted yet (nginx reads the body).
    NotStarted,
    /// A job is queued or running (dispatch.rs) and has not completed.
    Running,
    /// No task: nginx holds unsent data of ours; the write event resumes.
    WaitingForClient,
    /// Queuing failed (no dispatcher could be set up): the poll timer retries.
    RepostPending,
    /// The request was handed to `ngx_http_finalize_request`.
    Finished,
}

/// The response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    NotSent,
    /// `rc` is what `ngx_http_send_header` answered; without `body` (HEAD, 204, 304, or
    /// the head failed) body data is dropped.
    Sent {
        rc: ngx_int_t,
        body: bool,
    },
}

/// The client, as far as this request is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Connected,
    /// The connection failed (closed by the client, a write error).
    Gone,
    /// The send timeout expired.
    TimedOut,
    /// We gave up on the request (a panic in an event handler): it ends when the running
    /// task completes, with 500 or, once the head is out, a closed connection.
    Abandoned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    task: Task,
    head: Head,
    client: Client,
}

impl Default for State {
    fn default() -> Self {
        State { task: Task::NotStarted, head: Head::NotSent, client: Client::Connected }
    }
}

impl State {
    pub fn task(&self) -> Task {
        self.task
    }
    pub fn head(&self) -> Head {
        self.head
    }
    pub fn client(&self) -> Client {
        self.client
    }
    pub fn running(&self) -> bool {
        self.task == Task::Running
    }
    pub fn head_sent(&self) -> bool {
        matches!(self.head, Head::Sent { .. })
    }
    /// Nothing more can reach the client.
    pub fn client_gone(&self) -> bool {
        self.client != Client::Connected
    }
    /// Body data goes to nginx.
    pub fn delivers_body(&self) -> bool {
        matches!(self.head, Head::Sent { body: true, .. }) && !self.client_gone()
    }

    // ---- transitions ----

    /// A task was posted.
    pub fn posted(&mut self) {
        debug_assert!(self.task != Task::Running && self.task != Task::Finished, "{self:?}");
        self.task = Task::Running;
    }
    /// Posting failed; `false` when this was the first task (the request cannot start).
    pub fn post_failed(&mut self) -> bool {
        if self.task == Task::NotStarted {
            return false;
        }
        self.task = Task::RepostPending;
        true
    }
    /// The running task completed.
    pub fn task_completed(&mut self) {
        if self.task == Task::Running {
            self.task = Task::WaitingForClient;
        }
    }
    /// Between tasks, nginx holds data the client has not taken.
    pub fn wait_for_client(&mut self) {
        if self.task != Task::Running {
            self.task = Task::WaitingForClient;
        }
    }
    /// The head went out.
    pub fn head_sent_with(&mut self, rc: ngx_int_t, body: bool) {
        self.head = Head::Sent { rc, body };
    }
    /// The client is gone (or timed out, or we gave up): `true` the first time.
    pub fn lose_client(&mut self, how: Client) -> bool {
        if self.client == Client::Connected {
            self.client = how;
            return true;
        }
        if how == Client::Abandoned {
            self.client = how;
        }
        false
    }
    /// Handed to `ngx_http_finalize_request`.
    pub fn finish(&mut self) {
        self.task = Task::Finished;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let mut s = State::default();
        assert!(!s.post_failed(), "the first post failing ends the request");
        s.posted();
        assert!(s.running());
        s.head_sent_with(0, true);
        assert!(s.delivers_body());
        s.task_completed();
        assert_eq!(s.task(), Task::WaitingForClient);
        assert!(s.post_failed());
        assert_eq!(s.task(), Task::RepostPending);
        assert!(s.lose_client(Client::TimedOut));
        assert!(!s.lose_client(Client::Gone));
        assert_eq!(s.client(), Client::TimedOut);
        assert!(!s.delivers_body());
        s.lose_client(Client::Abandoned);
        assert_eq!(s.client(), Client::Abandoned);
        s.finish();
        assert_eq!(s.task(), Task::Finished);
    }
}
