//! What a visitor's user-agent says: device type, OS and browser family, and whether it is a
//! robot. Only this classification is kept, never the user-agent string (privacy policy §2:
//! tracking data is pseudonymised). woothee parses in microseconds, which the click path can
//! afford; link-preview fetchers it does not know are matched by name.

use super::offer::DeviceType;

/// Link-preview and unfurling fetchers: they open links to show a card, not because a person
/// clicked. Matched case-insensitively as substrings.
const PREVIEW_FETCHERS: &[&str] = &[
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "whatsapp",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "vkshare",
    "bingpreview",
    "google-pagerenderer",
    "snapchat",
    "viber",
    "mattermost",
    "microsoftpreview",
    "applebot",
    "bitlybot",
    "tumblr",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub device: Option<DeviceType>,
    pub os: Option<String>,
    pub browser: Option<String>,
    /// Why this is not a person clicking, if it is not: `no_user_agent`, `link_preview`, `bot`.
    pub robot: Option<&'static str>,
}

fn known(value: &str) -> Option<String> {
    (!value.is_empty() && value != "UNKNOWN").then(|| value.to_string())
}

/// How many user-agents each thread remembers the classification of; past that it starts
/// again empty. Real traffic repeats a few hundred browsers' strings, so nearly every click is
/// answered from memory instead of woothee's regular expressions.
const REMEMBERED: usize = 4096;

/// Remembered user-agents. foldhash, not SipHash: hashing a user-agent of a hundred-odd
/// bytes showed in the click path's profile, and a map of at most [`REMEMBERED`] entries
/// bounds what colliding strings could cost.
type Classified = std::collections::HashMap<Box<str>, Agent, foldhash::fast::RandomState>;

thread_local! {
    static CLASSIFIED: std::cell::RefCell<Classified> = std::cell::RefCell::default();
}

/// [`classify_uncached`], remembered per thread.
pub fn classify(user_agent: Option<&str>) -> Agent {
    let Some(ua) = user_agent else {
        return classify_uncached(None);
    };
    CLASSIFIED.with_borrow_mut(|remembered| {
        if let Some(agent) = remembered.get(ua) {
            return agent.clone();
        }
        let agent = classify_uncached(Some(ua));
        if remembered.len() >= REMEMBERED {
            remembered.clear();
        }
        remembered.insert(ua.into(), agent.clone());
        agent
    })
}

pub fn classify_uncached(user_agent: Option<&str>) -> Agent {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return Agent {
            device: None,
            os: None,
            browser: None,
            robot: Some("no_user_agent"),
        };
    };
    let lower = ua.to_ascii_lowercase();
    let preview = PREVIEW_FETCHERS.iter().any(|name| lower.contains(name));
    let parsed = woothee::parser::Parser::new().parse(ua);
    let category = parsed.as_ref().map_or("", |p| p.category);
    let device = match category {
        "pc" => Some(DeviceType::Desktop),
        "smartphone" | "mobilephone"
            if lower.contains("ipad")
                || (lower.contains("android") && !lower.contains("mobile")) =>
        {
            Some(DeviceType::Tablet)
        }
        "smartphone" | "mobilephone" => Some(DeviceType::Mobile),
        _ => None,
    };
    let robot = if preview {
        Some("link_preview")
    } else if category == "crawler"
        || woothee::is_crawler(ua)
        || lower.contains("bot")
        || lower.contains("spider")
        || lower.starts_with("curl/")
        || lower.starts_with("python-requests")
    {
        Some("bot")
    } else {
        None
    };
    Agent {
        device,
        os: parsed.as_ref().and_then(|p| known(p.os)),
        browser: parsed.as_ref().and_then(|p| known(p.name)),
        robot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

    #[test]
    fn people_get_their_device_os_and_browser() {
        let phone = classify(Some(IPHONE));
        assert_eq!(
            (phone.device, phone.robot),
            (Some(DeviceType::Mobile), None)
        );
        assert_eq!(phone.os.as_deref(), Some("iPhone"));
        assert_eq!(classify(Some(IPAD)).device, Some(DeviceType::Tablet));
        let desktop = classify(Some(WINDOWS));
        assert_eq!(
            (desktop.device, desktop.browser.as_deref()),
            (Some(DeviceType::Desktop), Some("Chrome"))
        );
    }

    #[test]
    fn robots_are_named_for_what_they_are() {
        assert_eq!(classify(None).robot, Some("no_user_agent"));
        assert_eq!(classify(Some("  ")).robot, Some("no_user_agent"));
        assert_eq!(
            classify(Some(
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
            ))
            .robot,
            Some("link_preview")
        );
        assert_eq!(
            classify(Some(
                "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
            ))
            .robot,
            Some("link_preview")
        );
        assert_eq!(
            classify(Some(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
            ))
            .robot,
            Some("bot")
        );
        assert_eq!(classify(Some("curl/8.5.0")).robot, Some("bot"));
    }
}

#[cfg(test)]
mod remembered {
    use super::*;

    #[test]
    fn remembered_classifications_equal_fresh_ones() {
        let agents = [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1",
            "",
        ];
        for _ in 0..2 {
            for agent in agents {
                assert_eq!(
                    classify(Some(agent)),
                    classify_uncached(Some(agent)),
                    "{agent}"
                );
            }
        }
        assert_eq!(classify(None), classify_uncached(None));
        for n in 0..REMEMBERED + 10 {
            let agent = format!("curl/{n}");
            assert_eq!(classify(Some(&agent)), classify_uncached(Some(&agent)));
        }
        CLASSIFIED.with_borrow(|remembered| assert!(remembered.len() <= REMEMBERED));
    }
}
