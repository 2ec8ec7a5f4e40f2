//! Where a photo was taken: a position to its country, offline (OpenStreetMap boundaries), and which source said so.

use crate::bundle::countries;
use crate::error::{Error, Result};
use country_boundaries::{CountryBoundaries, LatLon, BOUNDARIES_ODBL_60X30};
use serde::Serialize;
use std::sync::OnceLock;

/// A position in decimal degrees (WGS 84, as GPS and phones give it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

impl Location {
    /// A position, refused (`InvalidLocation`) when it is not one: latitude outside [-90, 90], longitude outside
    /// [-180, 180], or not a number.
    pub fn new(latitude: f64, longitude: f64) -> Result<Self> {
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return Err(Error::InvalidLocation(format!(
                "{latitude},{longitude} is not a position: latitude must lie in [-90, 90] and longitude in [-180, 180]"
            )));
        }
        Ok(Location { latitude, longitude })
    }

    /// "LAT,LON" (decimal degrees), as `--location` takes it.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidLocation(format!(
                "{text:?} is not a position: write LAT,LON in decimal degrees, e.g. 14.6,121.0"
            ))
        };
        let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
        Location::new(lat.trim().parse().map_err(|_| bad())?, lon.trim().parse().map_err(|_| bad())?)
    }

    /// The ISO 3166-1 alpha-2 code of the country this position lies in; `None` at sea or in Antarctica.
    pub fn country(self) -> Option<&'static str> {
        // The coarsest raster: the raster only indexes the same boundaries (finer ones answer the same, faster, in
        // 0.2-0.7 MB more; BENCHMARKS.md "Country from a position").
        static BOUNDARIES: OnceLock<Option<CountryBoundaries>> = OnceLock::new();
        let b = BOUNDARIES.get_or_init(|| CountryBoundaries::from_reader(BOUNDARIES_ODBL_60X30).ok()).as_ref()?;
        let at = LatLon::new(self.latitude, self.longitude).ok()?;
        // Ids are ISO 3166-1 codes and ISO 3166-2 subdivisions ("US-TX"): the country is the one our table knows.
        b.ids(at).into_iter().find_map(|id| countries::find(id).filter(|c| c.code == id).map(|c| c.code))
    }
}

/// Which of the places the caller could give decided the country (the most trusted first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountrySource {
    /// The country the user chose.
    Chosen,
    /// The position the camera wrote into the photo (EXIF GPS).
    PhotoGps,
    /// The device's position at the time of asking.
    DeviceLocation,
}

/// The country to weigh species by (as the user wrote it, or the ISO code a position gave), and where it came from:
/// a chosen country, else the photo's GPS position, else the device's position; none when none of them gives one (a
/// position at sea gives none).
pub fn decide<'a>(
    chosen: Option<&'a str>,
    photo: Option<Location>,
    device: Option<Location>,
) -> Option<(&'a str, CountrySource)> {
    if let Some(c) = chosen {
        return Some((c, CountrySource::Chosen));
    }
    let from = |l: Option<Location>, source| l.and_then(Location::country).map(|code| (code, source));
    from(photo, CountrySource::PhotoGps).or_else(|| from(device, CountrySource::DeviceLocation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_give_their_country_and_the_sea_gives_none() {
        for (lat, lon, want) in [
            (14.5995, 120.9842, Some("PH")),  // Manila
            (28.6139, 77.2090, Some("IN")),   // New Delhi
            (-23.5505, -46.6333, Some("BR")), // São Paulo
            (33.0, -97.0, Some("US")),        // Texas: "US-TX" comes first, the country is US
            (47.6973, 8.6910, Some("DE")),    // Büsingen, a German exclave in Switzerland
            (30.0, -40.0, None),              // the Atlantic
        ] {
            assert_eq!(Location::new(lat, lon).unwrap().country(), want, "{lat},{lon}");
        }
    }

    #[test]
    fn a_chosen_country_beats_the_photo_which_beats_the_device() {
        let manila = Location::new(14.6, 121.0).ok();
        let delhi = Location::new(28.6, 77.2).ok();
        let sea = Location::new(30.0, -40.0).ok();
        assert_eq!(decide(Some("Kenya"), manila, delhi), Some(("Kenya", CountrySource::Chosen)));
        assert_eq!(decide(None, manila, delhi), Some(("PH", CountrySource::PhotoGps)));
        assert_eq!(decide(None, None, delhi), Some(("IN", CountrySource::DeviceLocation)));
        assert_eq!(decide(None, sea, delhi), Some(("IN", CountrySource::DeviceLocation)), "a photo at sea");
        assert_eq!(decide(None, None, None), None);
    }

    #[test]
    fn what_is_not_a_position_is_a_clear_error() {
        assert_eq!(Location::parse(" 14.6 , 121.0 ").unwrap(), Location { latitude: 14.6, longitude: 121.0 });
        for bad in ["", "14.6", "14.6;121", "north,east", "91,0", "0,180.5", "NaN,0", "inf,0"] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains("not a position") && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
