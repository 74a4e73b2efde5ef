//! Continuing a streamed answer that failed midway: the continuation requests, and the seam where
//! the continuation's text joins what the consumer already has.

use crate::chat::{ChatRequest, Message};
use crate::policy::Resume;

/// The user turn of an `instructed` continuation, after the partial answer as the assistant's
/// turn. The router trims what the model repeats of the partial answer anyway.
pub const INSTRUCTION: &str = "Your previous answer was cut off. Continue it from exactly where it stops: \
do not repeat any of it, add no preface or comment; what you write is appended to it as it is.";

/// The most characters of the partial answer's end the seam compares with the continuation's
/// start: a model that repeats more than this is not continuing, it is starting over.
const MAX_OVERLAP: usize = 256;

/// The two forms of the continuation of `request` whose answer so far is `partial`.
pub(crate) fn continuations(request: &ChatRequest, partial: &str) -> (ChatRequest, ChatRequest) {
    // Anthropic refuses a prefill that ends in white space; the seam strips it from the
    // continuation instead
    let mut prefill = request.clone();
    prefill.messages.push(Message::assistant(partial.trim_end()));
    let mut instructed = request.clone();
    instructed.messages.push(Message::assistant(partial));
    instructed.messages.push(Message::user(INSTRUCTION));
    (prefill, instructed)
}

/// Where a continuation's text joins the partial answer: what it must not relay twice.
#[derive(Debug, Default)]
pub(crate) enum Seam {
    /// Nothing to take care of (a fresh answer, or the seam is behind).
    #[default]
    Clear,
    /// A prefill continuation: the white space the prefill left out, which the model may write
    /// again at its start.
    Prefill { trailing: String },
    /// An instructed continuation: its start is held until it is long enough to tell how much of
    /// the partial answer's end it repeats.
    Instructed { tail: String, held: String },
}

impl Seam {
    /// The seam of a continuation of `partial` made with `strategy` (none for a fresh answer).
    pub(crate) fn new(strategy: Option<Resume>, partial: &str) -> Seam {
        match strategy {
            Some(Resume::Prefill) => Seam::Prefill { trailing: partial[partial.trim_end().len()..].to_owned() },
            Some(Resume::Instructed) => {
                let mut start = partial.len().saturating_sub(MAX_OVERLAP);
                while !partial.is_char_boundary(start) {
                    start += 1;
                }
                Seam::Instructed { tail: partial[start..].to_owned(), held: String::new() }
            }
            _ => Seam::Clear,
        }
    }

    /// Takes a text delta of the continuation; returns the text to relay now (maybe empty).
    pub(crate) fn text(&mut self, text: String) -> String {
        match self {
            Seam::Clear => text,
            Seam::Prefill { trailing } => {
                // what the model writes again of the white space the prefill left out
                let common: usize =
                    text.chars().zip(trailing.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
                trailing.replace_range(..common, "");
                let rest = text[common..].to_owned();
                if trailing.is_empty() || !rest.is_empty() {
                    *self = Seam::Clear;
                }
                rest
            }
            Seam::Instructed { tail, held } => {
                held.push_str(&text);
                // decided once no longer repeat is possible: what is held no longer occurs in the
                // tail, or is longer than it (and one character more shows where an overlap ends)
                if !tail.contains(held.as_str()) || held.chars().count() > tail.chars().count() {
                    self.flush()
                } else {
                    String::new()
                }
            }
        }
    }

    /// Before any other event (or the end): what the seam still holds, the overlap trimmed.
    pub(crate) fn flush(&mut self) -> String {
        match std::mem::take(self) {
            Seam::Instructed { tail, held } => held[overlap(&tail, &held)..].to_owned(),
            _ => String::new(),
        }
    }
}

/// Whether `c` belongs to a word that spaces delimit. The scripts that write without spaces
/// (CJK ideographs, kana, Hangul and what follows them in Unicode) are each a word of their own.
fn is_word(c: char) -> bool {
    (c.is_alphanumeric() || c == '_') && u32::from(c) < 0x2E80
}

/// How many bytes at the start of `next` repeat the end of `partial`: the longest such run that
/// starts a word in `partial` and ends one in `next`, so that "…from" + "from here" loses the
/// repeated "from" while "…is a" + "apple" keeps its "a".
pub(crate) fn overlap(partial: &str, next: &str) -> usize {
    let mut best = 0;
    for (k, _) in next.char_indices().skip(1).chain(std::iter::once((next.len(), ' '))) {
        let candidate = &next[..k];
        if k > partial.len() {
            break;
        }
        if !partial.ends_with(candidate) {
            continue;
        }
        let before = partial[..partial.len() - k].chars().next_back();
        let first = candidate.chars().next();
        let starts_word = before.is_none_or(|b| !is_word(b)) || first.is_some_and(|f| !is_word(f));
        let after = next[k..].chars().next();
        let last = candidate.chars().next_back();
        let ends_word = after.is_none_or(|a| !is_word(a)) || last.is_some_and(|l| !is_word(l));
        if starts_word && ends_word {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_trims_whole_repeated_words_only() {
        assert_eq!(overlap("Hello from", "from gpt-4o."), 4);
        assert_eq!(overlap("Hello from", " gpt-4o."), 0);
        assert_eq!(overlap("Hello from", "Hello from the sim"), 10);
        assert_eq!(overlap("It is a", "apple"), 0, "a word that merely starts alike");
        assert_eq!(overlap("It is a", "a big one"), 1);
        assert_eq!(overlap("the end.", "end. Then"), 4);
        assert_eq!(overlap("rom", "romance"), 0);
        assert_eq!(overlap("", "anything"), 0);
        assert_eq!(overlap("café au", "au lait"), 2);
        assert_eq!(overlap("x", ""), 0);
    }

    fn relay(seam: &mut Seam, deltas: &[&str]) -> String {
        let mut out: String = deltas.iter().map(|d| seam.text((*d).to_owned())).collect();
        out.push_str(&seam.flush());
        out
    }

    #[test]
    fn an_instructed_seam_holds_the_start_then_drops_the_repeat() {
        let partial = "Hello from";
        let mut seam = Seam::new(Some(Resume::Instructed), partial);
        assert_eq!(seam.text("fr".into()), "", "held: too short to tell");
        assert_eq!(seam.text("om gpt-4o".into()), " gpt-4o");
        assert_eq!(seam.text(". You".into()), ". You", "the seam is behind");
        let mut seam = Seam::new(Some(Resume::Instructed), partial);
        assert_eq!(relay(&mut seam, &["from"]), "", "a continuation that only repeats, then ends");
        let mut seam = Seam::new(Some(Resume::Instructed), partial);
        assert_eq!(relay(&mut seam, &[" the", " sim"]), " the sim");
    }

    #[test]
    fn an_instructed_seam_lets_go_as_soon_as_nothing_can_repeat() {
        let partial = "x".repeat(300) + " and so on";
        let mut seam = Seam::new(Some(Resume::Instructed), &partial);
        assert_eq!(seam.text("Then".into()), "Then", "\"Then\" is nowhere in the tail: no wait");
        let mut seam = Seam::new(Some(Resume::Instructed), "日本語の文");
        assert_eq!(relay(&mut seam, &["の文章です"]), "章です", "a repeat in a script without spaces");
    }

    #[test]
    fn a_prefill_seam_drops_the_white_space_the_prefill_left_out() {
        let mut seam = Seam::new(Some(Resume::Prefill), "Hello ");
        assert_eq!(relay(&mut seam, &[" world"]), "world");
        let mut seam = Seam::new(Some(Resume::Prefill), "Hello ");
        assert_eq!(relay(&mut seam, &["world"]), "world");
        let mut seam = Seam::new(Some(Resume::Prefill), "Hello");
        assert_eq!(relay(&mut seam, &[" world"]), " world");
        let mut seam = Seam::new(Some(Resume::Prefill), "Hello\n\n");
        assert_eq!(relay(&mut seam, &["\nfoo"]), "foo", "only what it repeats");
    }

    #[test]
    fn a_fresh_answer_has_no_seam() {
        let mut seam = Seam::new(None, "whatever");
        assert_eq!(relay(&mut seam, &["a", "b"]), "ab");
    }

    #[test]
    fn the_tail_is_cut_on_a_char_boundary() {
        let partial = "é".repeat(300);
        let Seam::Instructed { tail, .. } = Seam::new(Some(Resume::Instructed), &partial) else { panic!() };
        assert!(tail.len() <= MAX_OVERLAP + 1 && !tail.is_empty());
    }
}
