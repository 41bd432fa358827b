//! The sync schedule, as the guide defines it: a save re-anchors the schedule at the
//! next occurrence of StartTime (UTC) after the save; after that, Run Every takes over.

use chrono::{DateTime, Duration, NaiveTime, Utc};

/// The first StartTime strictly after `saved` (tomorrow when today's has passed).
pub fn schedule_anchor(saved: DateTime<Utc>, start: (u8, u8)) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(u32::from(start.0), u32::from(start.1), 0).unwrap_or(NaiveTime::MIN);
    let today = saved.date_naive().and_time(time).and_utc();
    if today > saved { today } else { today + Duration::days(1) }
}

/// The next sync at or after `now` for a schedule anchored at `anchor` repeating every
/// `interval` seconds.
pub fn next_sync(anchor: DateTime<Utc>, interval: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    if now <= anchor || interval <= 0 {
        return anchor;
    }
    let elapsed = (now - anchor).num_seconds();
    let periods = (elapsed + interval - 1) / interval;
    anchor + Duration::seconds(periods * interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_guides_example() {
        // StartTime 1:00 pm, saved at 2:00 pm: the sync runs at 1:00 pm the next day.
        assert_eq!(schedule_anchor(t("2026-11-26T14:00:00Z"), (13, 0)), t("2026-11-27T13:00:00Z"));
        assert_eq!(schedule_anchor(t("2026-11-26T12:00:00Z"), (13, 0)), t("2026-11-26T13:00:00Z"));
        assert_eq!(schedule_anchor(t("2026-11-26T13:00:00Z"), (13, 0)), t("2026-11-27T13:00:00Z"));
    }

    #[test]
    fn run_every_takes_over_after_the_anchor() {
        let anchor = t("2026-11-27T13:00:00Z");
        assert_eq!(next_sync(anchor, 3600, t("2026-11-27T12:00:00Z")), anchor);
        assert_eq!(next_sync(anchor, 3600, t("2026-11-27T13:00:00Z")), anchor);
        assert_eq!(next_sync(anchor, 3600, t("2026-11-27T13:00:01Z")), t("2026-11-27T14:00:00Z"));
        assert_eq!(next_sync(anchor, 86_400, t("2026-11-30T00:00:00Z")), t("2026-11-30T13:00:00Z"));
    }
}
