use crate::admission::RefuseReason;
use std::collections::HashSet;

#[test]
fn names_are_distinct_snake_case_and_indexes_match_all() {
    let mut names = HashSet::new();
    for (i, reason) in RefuseReason::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
        let name = reason.name();
        assert!(names.insert(name), "{name} twice");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert_eq!(reason.to_string(), name);
    }
    assert_eq!(RefuseReason::RateLimitedPerIp.name(), "rate_limited_per_ip");
    assert_eq!(RefuseReason::HandlerVeto.name(), "handler_veto");
}
