//! The audit log: `GET …/activities?from_date&to_date` and `GET …/activities/{activityId}`.
//! Dates are validated by `dates.rs` and read per the current `WindowSemantics` (`window.rs`:
//! exact or whole days, UTC or a zone offset, a silent cap, a visibility delay); newest first;
//! only rows visible by the emulator clock; no pagination; the rows go out pre-serialized.
//! Runs without the inventory lock.

use super::{ApiError, Ctx, Result};
use crate::emulator::body::Reply;
use crate::emulator::dates;
use crate::emulator::window::{Bound, WindowSemantics};

fn bound(ctx: &Ctx<'_>, w: &WindowSemantics, name: &str, which: Bound) -> Result<Option<i64>> {
    let Some(raw) = ctx.query_one(name) else {
        return Ok(None);
    };
    let p = dates::parse(name, raw, w.dates).map_err(ApiError::bad_request)?;
    Ok(Some(w.bound_ms(p, which)))
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply> {
    let w = ctx.inner.window();
    let from = bound(ctx, &w, "from_date", Bound::From)?;
    let to = bound(ctx, &w, "to_date", Bound::To)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request("from_date must not be after to_date"));
    }
    let log = ctx
        .inner
        .log(ctx.org_id())
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    let now = ctx.now.timestamp_millis();
    // The visibility delay hides everything created after `now - delay`: an upper bound.
    let to = match (to, w.created_limit_ms(now)) {
        (Some(t), Some(limit)) => Some(t.min(limit)),
        (t, limit) => t.or(limit),
    };
    let rows = log
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .query(from, to, now, w.limit());
    Ok(Reply::items(rows))
}

pub(super) fn get(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.param("activityId");
    let log = ctx
        .inner
        .log(ctx.org_id())
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    let now = ctx.now.timestamp_millis();
    let created_limit = ctx.inner.window().created_limit_ms(now).unwrap_or(i64::MAX);
    let row = log
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(id, now, created_limit);
    let row = row.ok_or_else(|| ApiError::not_found(format!("Activity {id} not found")))?;
    Ok(Reply::raw(row))
}
