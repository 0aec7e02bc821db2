//! Received bytes to the handler: the frame reader of a connection, made when needed,
//! switched when the handler changes codecs, and its memory counted in the worker's frame
//! budget. The codec is asked only what every codec answers (`is_passthrough`,
//! `decoder`, `max_exact_read`): a custom one goes through the same path as a built-in.

use super::callbacks::guard;
use super::conn_state::ConnState;
use crate::codec::{Codec, Event, FrameDecoder, FrameReader, Next};
use crate::conn::CloseRequest;
use crate::error::CloseReason;
use crate::handler::Handler;
use crate::stats::{bump, WorkerStats};

/// Hand received bytes to the handler through the connection's frame reader: whole
/// frames (or raw chunks), exact reads and their progress, in order. Stops delivering once
/// the connection is asked to close; a framing error closes it with a typed reason. A
/// codec switched by the handler (`Conn::set_codec`) frames the bytes after the delivery
/// that switched it, those of this receive included.
fn deliver<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    st: &mut ConnState<H::Session>,
    mut data: &[u8],
) {
    let Some(session) = st.session.as_mut() else {
        return;
    };
    let conn = &mut st.conn;
    if conn.sink().is_some() {
        // A receive into a file: its bytes go to the file (those the reader held first);
        // those behind them wait for its end (reading pauses too).
        feed_sink(st);
        let conn = &mut st.conn;
        let n = conn.sink_mut().map_or(0, |sink| sink.take(data));
        return hold(&mut st.reader, conn, &data[n..]);
    }
    if conn.jobs_full() {
        // At the job cap: no delivery until a result is in (reading pauses too).
        return hold(&mut st.reader, conn, data);
    }
    conn.set_jobs_held(false);
    if st.reader.is_none() {
        // A reader made now decodes with the codec in force: nothing to switch.
        conn.take_codec_changed();
        if conn.ctx.codec.is_passthrough() && !conn.exact_pending() {
            // Unframed bytes, no exact read asked: straight to the handler, no reader.
            if guard(stats, || handler.on_data(session, conn, data)).is_none() {
                conn.panicked();
            }
            if !conn.exact_pending() && !conn.take_codec_changed() {
                return;
            }
            // An exact read or another codec from now on: the next receive goes
            // through a reader.
            st.reader = Some(new_reader(&conn.ctx.codec));
            return;
        }
        st.reader = Some(new_reader(&conn.ctx.codec));
    }
    let reader = st.reader.as_deref_mut().expect("created above");
    loop {
        if conn.take_codec_changed() {
            let codec = &conn.ctx.codec;
            reader.set_decoder(codec.decoder(), codec.max_exact_read());
        }
        if let Some((len, progress)) = conn.take_exact() {
            if let Err(e) = reader.read_exact(len as usize, progress) {
                conn.fail(CloseReason::from_frame_error(e));
                return;
            }
        }
        let discarded = reader.discarded_frames();
        let result = reader.feed(data, &mut |event| {
            let ok = match event {
                Event::Frame(frame) => guard(stats, || handler.on_data(session, conn, frame)),
                Event::Progress { received, total } => guard(stats, || {
                    handler.on_progress(session, conn, received, total)
                }),
            };
            if ok.is_none() {
                conn.panicked();
            }
            if conn.close_request() != CloseRequest::None {
                return Next::Stop;
            }
            if conn.jobs_full() {
                conn.set_jobs_held(true);
                return Next::Hold;
            }
            if conn.sink().is_some() {
                // A receive into a file began: the rest goes to it (below).
                conn.set_jobs_held(true);
                return Next::Hold;
            }
            if conn.codec_changed() {
                // The rest is framed by the new codec (an exact read asked too waits).
                return Next::Hold;
            }
            match conn.take_exact() {
                Some((len, progress)) => Next::ReadExact {
                    len: len as usize,
                    progress,
                },
                None => Next::Continue,
            }
        });
        let skipped = reader.discarded_frames() - discarded;
        if skipped > 0 {
            bump(&stats.frames_discarded, skipped);
        }
        if let Err(e) = result {
            bump(&stats.protocol_errors, 1);
            tracing::debug!(conn = %conn.id(), peer = %conn.peer, error = %e, "closing: bad framing");
            conn.fail(CloseReason::from_frame_error(e));
            return;
        }
        if conn.sink().is_some() {
            // The bytes behind the frame that asked for it are the file's first.
            return feed_sink(st);
        }
        if !conn.codec_changed() || conn.close_request() != CloseRequest::None {
            return;
        }
        // The reader holds the rest of this receive: decode it with the new codec.
        data = &[];
    }
}

/// Give a receive into a file the bytes the connection's reader holds, up to what it
/// still wants (they came before anything received later).
pub(super) fn feed_sink<S>(st: &mut ConnState<S>) {
    let (Some(reader), Some(sink)) = (st.reader.as_deref_mut(), st.conn.sink_mut()) else {
        return;
    };
    if reader.buffered() > 0 && sink.wanted() > 0 {
        let wanted = sink.wanted().min(usize::MAX as u64) as usize;
        reader.take_held(wanted, |bytes| sink.take(bytes));
    }
}

/// Keep `data` in the connection's reader (made if it has none) until the connection
/// may take deliveries again (room under its job cap, a receive into a file ended).
fn hold(
    reader: &mut Option<Box<FrameReader<FrameDecoder>>>,
    conn: &mut crate::conn::Conn,
    data: &[u8],
) {
    if data.is_empty() {
        return;
    }
    let reader = reader.get_or_insert_with(|| {
        conn.take_codec_changed(); // a reader made now decodes with the codec in force
        new_reader(&conn.ctx.codec)
    });
    reader.hold(data);
    conn.set_jobs_held(true);
}

/// Keep the read timeout's "frame started at" stamp in step with the reader after a
/// delivery: none once nothing is held, else since `now` if it was not set.
pub(super) fn stamp_partial<S>(st: &mut ConnState<S>, now: u64) {
    let buffered = st.reader.as_ref().map_or(0, |r| r.buffered());
    if let Some(t) = st.timing.as_deref_mut() {
        if buffered == 0 {
            t.partial_since = None;
        } else if t.partial_since.is_none() {
            t.partial_since = Some(now);
        }
    }
}

/// Heap bytes held for a connection's received data: its frame reader's (a partly
/// received frame, bytes waiting for room) and a receive into a file's (bytes waiting for
/// the disk and the write in flight). All of it counts in the worker's frame budget.
pub(super) fn held_bytes<S>(st: &ConnState<S>) -> usize {
    let sink = st.conn.sink().map_or(0, |s| s.held_bytes());
    st.reader.as_ref().map_or(0, |r| r.held_bytes()) + sink
}

/// [`deliver`] `data`, then account for the change in what the connection holds for
/// received data ([`held_bytes`]) in the worker's total `held`. A connection whose
/// holding grew while the total is over `budget` is closed with
/// [`CloseReason::FrameBudget`] and its reader freed at once: the connection that asked
/// for more, not one already holding its share.
pub(super) fn deliver_within_budget<H: Handler>(
    handler: &H,
    stats: &WorkerStats,
    st: &mut ConnState<H::Session>,
    data: &[u8],
    held: &mut usize,
    budget: usize,
) {
    let before = held_bytes(st);
    deliver(handler, stats, st, data);
    let after = held_bytes(st);
    *held = *held - before + after;
    if after <= before || *held <= budget {
        return;
    }
    tracing::debug!(conn = %st.conn.id(), held = *held, budget, "closing: over the frame budget");
    st.conn.fail(CloseReason::FrameBudget);
    // The reader goes now; a receive into a file's bytes stay counted until its close
    // lets them go (`closing`).
    *held -= st.reader.take().map_or(0, |r| r.held_bytes());
}

/// A connection's frame reader, made when its first receive needs one.
fn new_reader(codec: &Codec) -> Box<FrameReader<FrameDecoder>> {
    Box::new(FrameReader::with_exact_max(
        codec.decoder(),
        codec.max_exact_read(),
    ))
}
