//! ISO 3166-1 alpha-2 country codes, and the codes people write instead.
//!
//! [`crate::channel::validate_country`] only checks a code's shape, so a
//! plausible-looking `UK` would put a node on the channel `cc.UK`, which no
//! job for the United Kingdom (`cc.GB`) reaches. Provisioning checks the
//! volunteer's file against this table (the volunteer is the one person who
//! can fix it cheaply, while writing it), and the hub checks what nodes
//! declare and what tokens say.

/// Every officially assigned ISO 3166-1 alpha-2 code (249), sorted, as in
/// Debian's iso-codes (`/usr/share/iso-codes/json/iso_3166-1.json`).
const CODES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Codes that are not ISO 3166-1 but that people use for a country: what
/// to write instead, and why the code looked right.
const MISTAKES: &[(&str, &str)] = &[
    (
        "UK",
        "the United Kingdom's ISO code is \"GB\" (UK is only its Internet domain)",
    ),
    (
        "EN",
        "EN is the code of the English language, not of a country: write \"GB\" for the \
         United Kingdom, \"US\" for the United States, \"IE\" for Ireland",
    ),
    (
        "EL",
        "Greece's ISO code is \"GR\" (EL is the European Union's own abbreviation)",
    ),
    (
        "EU",
        "EU is not a country: write the code of the country the node is in (continent = \
         \"EU\" is the setting for Europe)",
    ),
    ("DA", "DA is the Danish language; Denmark is \"DK\""),
    ("SP", "Spain's code is \"ES\""),
    ("GER", "Germany's code is \"DE\""),
    ("DEU", "use the two-letter code: Germany is \"DE\""),
    ("JA", "JA is the Japanese language; Japan is \"JP\""),
    ("ZH", "ZH is the Chinese language; China is \"CN\""),
    ("KO", "KO is the Korean language; South Korea is \"KR\""),
    ("CS", "CS is the Czech language; Czechia is \"CZ\""),
    ("SW", "Sweden is \"SE\" and Switzerland \"CH\""),
    (
        "USA",
        "use the two-letter code: the United States are \"US\"",
    ),
];

/// True when `code` (upper case) is an assigned ISO 3166-1 alpha-2 code.
pub fn is_assigned(code: &str) -> bool {
    code.len() == 2 && CODES.split(' ').any(|c| c == code)
}

/// A hint for a code that is not ISO 3166-1 but a usual mistake.
pub fn hint(code: &str) -> Option<&'static str> {
    let up = code.trim().to_ascii_uppercase();
    MISTAKES.iter().find(|(m, _)| *m == up).map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_sorted_and_well_formed() {
        let codes: Vec<&str> = CODES.split(' ').collect();
        assert_eq!(codes.len(), 249);
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn usual_mistakes_are_not_codes_and_have_hints() {
        for (m, h) in MISTAKES {
            assert!(!is_assigned(m), "{m} is a real code; no hint needed");
            assert!(!h.is_empty());
        }
        assert!(is_assigned("GB") && is_assigned("GR") && is_assigned("DE"));
        assert!(!is_assigned("UK") && !is_assigned("XX") && !is_assigned("gb"));
        assert!(hint("uk").unwrap().contains("\"GB\""));
        assert!(hint("El ").unwrap().contains("\"GR\""));
        assert_eq!(hint("XX"), None);
    }
}
