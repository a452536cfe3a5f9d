//! The server's own hold music: a 10-second piece generated here (four soft chords,
//! arpeggiated sine tones), served as an 8 kHz 16-bit mono WAV at
//! `/api/call-center/hold-music.wav`, public and cacheable. One play is one segment of the
//! hold loop; `CALL_CENTER_HOLD_MUSIC_URL` replaces it.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// Samples per second (telephone quality: what the caller hears anyway).
pub const SAMPLE_RATE: u32 = 8_000;
/// The piece's length in seconds: one hold segment.
pub const SECONDS: u32 = 10;
/// The WAV header's length.
const HEADER: usize = 44;

/// Frequencies (Hz) of the four chords: C major, A minor, F major, G major.
const CHORDS: [[f64; 3]; 4] = [
    [261.63, 329.63, 392.00],
    [220.00, 261.63, 329.63],
    [174.61, 220.00, 261.63],
    [196.00, 246.94, 293.66],
];

/// The piece's samples: each chord for a quarter of the piece, its three notes entering one
/// after the other, each with a soft attack and release so segments join without a click.
fn samples() -> Vec<i16> {
    let total = (SAMPLE_RATE * SECONDS) as usize;
    let per_chord = total / CHORDS.len();
    (0..total)
        .map(|n| {
            let chord = &CHORDS[(n / per_chord).min(CHORDS.len() - 1)];
            let in_chord = (n % per_chord) as f64 / per_chord as f64;
            let t = n as f64 / f64::from(SAMPLE_RATE);
            let mut v = 0.0;
            for (i, f) in chord.iter().enumerate() {
                let start = i as f64 * 0.15;
                if in_chord < start {
                    continue;
                }
                let attack = ((in_chord - start) / 0.05).min(1.0);
                let release = ((1.0 - in_chord) / 0.08).min(1.0);
                v += (2.0 * std::f64::consts::PI * f * t).sin() * attack * release;
            }
            // Three notes at most: a quarter of full scale each keeps it soft.
            #[allow(clippy::cast_possible_truncation)]
            let s = (v * 0.22 * f64::from(i16::MAX)) as i16;
            s
        })
        .collect()
}

/// The WAV file (RIFF, PCM, mono, 16 bit).
fn wav() -> Vec<u8> {
    let data: Vec<u8> = samples().iter().flat_map(|s| s.to_le_bytes()).collect();
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// The file, built once.
pub static HOLD_MUSIC: LazyLock<Vec<u8>> = LazyLock::new(wav);

/// Its entity tag (the piece never changes within a version).
const ETAG: &str = concat!("\"hold-", env!("CARGO_PKG_VERSION"), "\"");

/// `GET` (and `HEAD`) `/api/call-center/hold-music.wav`.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == ETAG));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::ETAG, ETAG));
    if fresh {
        return res.finish();
    }
    res.content_type("audio/wav").body(HOLD_MUSIC.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_piece_is_a_ten_second_pcm_wav() {
        let wav = &*HOLD_MUSIC;
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        let data = u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]);
        assert_eq!(data, SAMPLE_RATE * SECONDS * 2);
        assert_eq!(wav.len(), HEADER + data as usize);
        let peak = wav[HEADER..]
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
            .max()
            .unwrap_or(0);
        assert!(
            peak > 5_000 && peak < i16::MAX.unsigned_abs(),
            "audible, not clipped: {peak}"
        );
    }
}
