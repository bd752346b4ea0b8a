//! SMS length: GSM-7 fits 160 characters in one segment (153 per part when split); anything
//! outside the GSM-7 alphabet forces UCS-2 at 70 (67).

const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Extension characters cost an escape plus the character.
const EXTENSION: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    pub encoding: SmsEncoding,
    /// Septets for GSM-7, UTF-16 code units for UCS-2.
    pub units: usize,
    pub segments: usize,
}

pub fn sms_length(text: &str) -> SmsLength {
    let mut septets = 0;
    for c in text.chars() {
        if BASIC.contains(c) {
            septets += 1;
        } else if EXTENSION.contains(c) {
            septets += 2;
        } else {
            let units = text.encode_utf16().count();
            return SmsLength { encoding: SmsEncoding::Ucs2, units, segments: segments(units, 70, 67) };
        }
    }
    SmsLength { encoding: SmsEncoding::Gsm7, units: septets, segments: segments(septets, 160, 153) }
}

fn segments(units: usize, single: usize, part: usize) -> usize {
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scandinavian_letters_are_gsm7_but_a_dash_is_not() {
        assert_eq!(sms_length("Hej Åsa, Ødegård, Æble!").encoding, SmsEncoding::Gsm7);
        assert_eq!(sms_length("2–3 minutes").encoding, SmsEncoding::Ucs2, "en dash forces UCS-2");
    }

    #[test]
    fn segment_boundaries() {
        assert_eq!(sms_length(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_length(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_length(&"€".repeat(80)).units, 160);
        assert_eq!(sms_length(&"€".repeat(81)).segments, 2);
        assert_eq!(sms_length(&"ł".repeat(70)).segments, 1);
        assert_eq!(sms_length(&"ł".repeat(71)).segments, 2);
    }
}
