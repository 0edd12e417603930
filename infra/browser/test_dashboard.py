"""The dashboard as people use it, in a real Chromium: the whole story from sign-up to a paid
conversion, the W-9, data export and erasure, the admin's screens, and what must be refused
(another tenant's pages, a form without its CSRF token). Every page opened is checked by
axe-core and photographed at 390 and 1280 px (conftest.py)."""

import json
import re
import time
import urllib.parse

PASSWORD = "a long secret passphrase"
SHOP = "shop@brand.example"
PUB = "pub@blog.example"


def register(person, role, email_address, name):
    person.open("/app/register")
    person.page.check(f"input[name=role][value={role}]")
    person.page.fill("#f-name", name)
    person.page.fill("#f-email", email_address)
    person.page.fill("#f-password", PASSWORD)
    person.page.fill("#f-date_of_birth", "1990-04-17")
    person.submit()
    assert "done=registered" in person.page.url, person.page.content()[:2000]


def row(person, text):
    return person.page.locator("tr", has_text=text).first


def test_the_whole_story_from_sign_up_to_a_paid_conversion(runner, visitor):
    shop, pub, admin = visitor("shop"), visitor("pub"), visitor("admin")

    # An advertiser and an affiliate register (the form refuses a minor, naming the field).
    register(shop, "advertiser", SHOP, "Brand")
    pub.open("/app/register")
    pub.page.check("input[name=role][value=affiliate]")
    pub.page.fill("#f-name", "Blog")
    pub.page.fill("#f-email", PUB)
    pub.page.fill("#f-password", PASSWORD)
    pub.page.fill("#f-date_of_birth", "2015-01-01")
    pub.submit()
    assert pub.page.get_attribute("#f-date_of_birth", "aria-invalid") == "true"
    assert pub.page.input_value("#f-email") == PUB, "the form keeps what was typed"
    pub.check("/app/register (refused)")
    register(pub, "affiliate", PUB, "Blog")

    # The mailed link verifies the address on the dashboard.
    link = re.search(r"\S+/app/verify-email\?token=\S+", runner.mail_to(PUB)[-1]).group(0)
    pub.page.goto(link)
    assert "Your email address is confirmed" in pub.page.content()
    pub.check("/app/verify-email")

    # The admin approves both.
    admin.sign_in("admin@demo.leadsrefer.local", runner.passwords["admin"])
    admin.open("/app")
    admin.open("/app/admin/accounts?status=pending_approval")
    for address in (SHOP, PUB):
        with admin.page.expect_navigation():
            row(admin, address).locator("button", has_text="Approve").click()
        assert "done=decided" in admin.page.url
    admin.open("/app/admin/accounts?status=active")
    assert SHOP in admin.page.content() and PUB in admin.page.content()

    # The advertiser publishes an offer; its page shows the integration.
    shop.sign_in(SHOP, PASSWORD)
    shop.open("/app/offers/new")
    shop.page.fill("#f-name", "Running shoes")
    shop.page.fill("#f-destination", "https://brand.example/shoes?click={click_id}&s1={sub1}")
    shop.page.fill("#f-revenue", "80.00")
    shop.page.fill("#f-payout", "eighty")
    shop.page.select_option("#f-approval", "manual")
    shop.submit()
    assert shop.page.get_attribute("#f-payout", "aria-invalid") == "true", "the API names the field"
    assert shop.page.input_value("#f-name") == "Running shoes"
    shop.check("/app/offers/new (refused)")
    shop.page.fill("#f-payout", "60.00")
    shop.page.select_option("#f-approval", "manual")
    shop.submit()
    assert "done=offer-saved" in shop.page.url, shop.page.content()[:3000]
    offer_id = urllib.parse.urlsplit(shop.page.url).path.split("/")[3]
    shop.check()
    postback = shop.text("#postback-url")
    assert postback.startswith(runner.base + "/postback?click_id={click_id}")
    shop.open(f"/app/offers/{offer_id}/edit")

    # The affiliate applies; the advertiser approves the application.
    pub.sign_in(PUB, PASSWORD)
    pub.open("/app/offers")
    with pub.page.expect_navigation():
        row(pub, "Running shoes").locator("button", has_text="Apply").click()
    assert "done=applied" in pub.page.url
    shop.open(f"/app/offers/{offer_id}")
    with shop.page.expect_navigation():
        shop.page.locator("button", has_text="Approve").first.click()
    assert "done=decided" in shop.page.url

    # The affiliate sets their postback URL for the offer; the page shows it back.
    pub.open(f"/app/offers/{offer_id}")
    pub.page.fill("#f-url", "http://127.0.0.1:9/pb?click={click_id}&payout={payout}")
    pub.submit("form[action$='/postback-url'] button")
    assert "done=postback-saved" in pub.page.url, pub.page.content()[:2000]
    assert pub.page.input_value("#f-url") == "http://127.0.0.1:9/pb?click={click_id}&payout={payout}"
    pub.check()

    # The affiliate makes a link and copies it.
    pub.open("/app/links")
    pub.page.select_option("#f-offer_id", offer_id)
    pub.page.fill("#f-sub1", "newsletter")
    pub.submit()
    assert "done=link-made" in pub.page.url
    pub.check()
    tracking_link = pub.text("code[id^=link-]")
    assert tracking_link.startswith(runner.base + "/c/")

    # A shopper clicks; the advertiser's server posts the sale back.
    status, headers, _ = runner.get(tracking_link)
    assert status == 302, headers
    click_id = re.search(r"click=([0-9A-Z]{26})", headers["location"]).group(1)
    assert "s1=newsletter" in headers["location"]
    url = postback.replace("{click_id}", click_id).replace("{order_id}", "A-1").replace("{sale_amount}", "89.00")
    status, _, body = runner.get(url)
    assert status == 201, body

    # Both see the conversion, and their charts and figures move.
    for person in (pub, shop):
        person.open("/app")
        assert person.text(".kpi:has-text('Conversions') .value") == "1"
        assert "<svg" in person.page.content()
        person.open("/app/conversions")
        assert "A-1" in row(person, "A-1").inner_text()
    assert "$60.00" in row(pub, "A-1").inner_text()
    assert "$80.00" in row(shop, "A-1").inner_text() and "$60.00" not in row(shop, "A-1").inner_text()
    pub.open("/app/reports?group_by=sub1")
    assert "newsletter" in row(pub, "newsletter").inner_text()
    download = pub.page.request.get(runner.base + "/app/reports.csv?group_by=sub1")
    assert download.ok and "newsletter" in download.text()

    # The advertiser sends a test conversion: listed as a test, counted nowhere.
    shop.open(f"/app/offers/{offer_id}")
    with shop.page.expect_navigation():
        shop.page.click(f"form[action='/app/offers/{offer_id}/test-conversion'] button")
    assert "done=test-sent" in shop.page.url, shop.page.content()[:3000]
    shop.check("/app/conversions (a test)")
    assert "test" in shop.page.locator("main table").inner_text(), shop.page.content()[:3000]
    shop.open("/app")
    assert shop.text(".kpi:has-text('Conversions') .value") == "1"

    # The advertiser approves it.
    shop.open("/app/conversions")
    with shop.page.expect_navigation():
        row(shop, "A-1").locator("button", has_text="Approve").click()
    assert "approved" in row(shop, "A-1").inner_text()

    # The affiliate gives a bank account and a W-9.
    pub.open("/app/payouts")
    pub.page.check("input[name=type][value=ach]")
    pub.page.fill("#f-routing_number", "021000021")
    pub.page.fill("#f-account_number", "000123456789")
    pub.page.fill("#f-name_on_account", "Pat Publisher")
    pub.submit("form[action='/app/payouts/method'] button[type=submit]")
    assert "done=method-saved" in pub.page.url, pub.page.content()[:3000]
    assert "ends in 6789" in pub.page.content() and "000123456789" not in pub.page.content()
    pub.open("/app/tax")
    pub.page.fill("#f-legal_name", "Pat Publisher")
    pub.page.select_option("#f-classification", "individual")
    pub.page.fill("#f-address-line1", "1 Main St")
    pub.page.fill("#f-address-city", "Springfield")
    pub.page.fill("#f-address-state", "IL")
    pub.page.fill("#f-address-zip", "62701")
    pub.page.select_option("#f-tin_type", "ssn")
    pub.page.fill("#f-tin", "123-45-6789")
    pub.page.fill("#f-signed_name", "Pat Publisher")
    pub.page.check("input[name=certify]")
    pub.submit()
    assert "done=tax-saved" in pub.page.url, pub.page.content()[:3000]
    assert "6789" in pub.page.content() and "123-45-6789" not in pub.page.content()
    pub.check()

    # The admin runs payouts; the affiliate sees the payout.
    admin.open("/app/admin/payouts")
    with admin.page.expect_navigation():
        admin.page.click("form[action='/app/admin/payouts/run'] button")
    assert "done=run-started" in admin.page.url
    admin.check()
    with admin.page.expect_download() as download:
        admin.page.locator("a", has_text="Download the ACH file").first.click()
    records = open(download.value.path()).read().splitlines()
    assert records[0].startswith("101") and all(len(r) == 94 for r in records), records[:2]
    pub.open("/app/payouts")
    payouts = pub.page.locator("table", has_text="Reference").inner_text()
    assert "$60.00" in payouts, payouts
    admin.page.select_option("#f-affiliate_id", label=f"Blog ({PUB})")
    with admin.page.expect_navigation():
        admin.page.click("form[action='/app/admin/payouts'] button")
    assert "$60.00" in admin.page.locator("main").inner_text()
    admin.check("/app/admin/payouts (an affiliate)")


def test_export_and_erasure(runner, visitor):
    pub = visitor("pub-export").sign_in("affiliate@demo.leadsrefer.local", runner.passwords["affiliate"])
    pub.open("/app/account")
    with pub.page.expect_navigation():
        pub.page.click("form[action='/app/account/export'] button")
    assert "done=export-requested" in pub.page.url
    deadline = time.time() + 90
    while pub.page.locator("main a", has_text="Download").count() == 0:
        assert time.time() < deadline, "the export was not ready within 90 s"
        time.sleep(3)
        pub.page.reload()
    pub.check()
    with pub.page.expect_download() as download:
        pub.page.locator("main a", has_text="Download").first.click()
    exported = json.loads(open(download.value.path()).read())
    assert "affiliate@demo.leadsrefer.local" in json.dumps(exported)

    gone = visitor("gone")
    register(gone, "affiliate", "gone@blog.example", "Gone")
    gone.sign_in("gone@blog.example", PASSWORD)
    gone.open("/app/account/erase")
    gone.page.fill("#f-password", "not the password")
    gone.submit()
    assert gone.page.get_attribute("#f-password", "aria-invalid") == "true"
    gone.page.fill("#f-password", PASSWORD)
    gone.submit()
    assert "/app/sign-in" in gone.page.url
    gone.page.fill("#f-email", "gone@blog.example")
    gone.page.fill("#f-password", PASSWORD)
    gone.submit()
    assert "/app/sign-in" in gone.page.url, "an erased account cannot sign in"

    admin = visitor("admin-privacy").sign_in("admin@demo.leadsrefer.local", runner.passwords["admin"])
    admin.open("/app/admin/privacy")
    assert "erasure" in admin.page.locator("main").inner_text()


def test_a_foreign_affiliate_uploads_a_w8ben(runner, visitor):
    intl = visitor("intl")
    register(intl, "affiliate", "intl@blog.example", "Intl")
    admin = visitor("admin-intl").sign_in("admin@demo.leadsrefer.local", runner.passwords["admin"])
    admin.open("/app/admin/accounts?status=pending_approval")
    with admin.page.expect_navigation():
        row(admin, "intl@blog.example").locator("button", has_text="Approve").click()
    intl.sign_in("intl@blog.example", PASSWORD)
    intl.open("/app/tax")
    intl.page.check("input[name=status][value=foreign]")
    intl.page.fill("#f-country", "DE")
    intl.page.fill("#f-signed_name", "Ingrid Intl")
    intl.page.check("input[name=certify]")
    intl.submit("form[action='/app/tax'] button[type=submit]")
    assert "done=tax-saved" in intl.page.url, intl.page.content()[:3000]
    intl.page.set_input_files("#f-w8ben", files=[{"name": "w8ben.txt", "mimeType": "text/plain", "buffer": b"not a pdf"}])
    intl.submit("form[action='/app/tax/w8ben'] button")
    assert intl.page.get_attribute("#f-w8ben", "aria-invalid") == "true", intl.page.content()[:3000]
    intl.check("/app/tax (refused upload)")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    intl.page.set_input_files("#f-w8ben", files=[{"name": "w8ben.pdf", "mimeType": "application/pdf", "buffer": pdf}])
    intl.submit("form[action='/app/tax/w8ben'] button")
    assert "done=tax-saved" in intl.page.url, intl.page.content()[:3000]


def test_the_admin_screens(runner, visitor):
    admin = visitor("admin").sign_in("admin@demo.leadsrefer.local", runner.passwords["admin"])
    for path in ("/app/admin/flagged", "/app/admin/postbacks", "/app/admin/audit", "/app/offers",
                 "/app/conversions", "/app/account", "/app/privacy-policy", "/app/reports"):
        admin.open(path)
    # Without a party, the network's report: the demo's traffic, with the network's margin.
    content = admin.page.content()
    assert "the whole network" in content and "Margin" in content, content[:3000]
    admin.page.select_option("#f-advertiser_id", index=1)
    with admin.page.expect_navigation():
        admin.page.click("form[action='/app/reports'] button")
    admin.check("/app/reports (an advertiser)")
    assert "Margin" in admin.page.content()


def test_a_new_policy_version_is_shown_until_acknowledged(runner, visitor):
    admin = visitor("admin-policy").sign_in("admin@demo.leadsrefer.local", runner.passwords["admin"])
    admin.open("/app/admin/privacy")
    admin.page.fill("#f-version", "2026-12")
    admin.page.fill("#f-summary", "We now keep call recordings for 90 days.")
    admin.submit("form[action='/app/admin/policy-versions'] button")
    assert "done=policy-published" in admin.page.url
    admin.check()
    shop = visitor("policy-shop").sign_in("advertiser@demo.leadsrefer.local", runner.passwords["advertiser"])
    shop.open("/app/offers")
    banner = shop.page.locator(".policy")
    assert "call recordings for 90 days" in banner.inner_text()
    with shop.page.expect_navigation():
        banner.locator("button").click()
    assert urllib.parse.urlsplit(shop.page.url).path == "/app/offers", "back where the reader was"
    assert shop.page.locator(".policy").count() == 0
    shop.open("/app")
    assert shop.page.locator(".policy").count() == 0, "acknowledged once, for good"


def test_calls_and_numbers(runner, visitor):
    shop = visitor("calls-shop").sign_in("advertiser@demo.leadsrefer.local", runner.passwords["advertiser"])
    shop.open("/app/numbers")
    shop.page.fill("#f-number", "+1 415 555")
    shop.submit("form[action='/app/numbers'] button")
    assert shop.page.get_attribute("#f-number", "aria-invalid") == "true"
    shop.check("/app/numbers (refused)")
    shop.page.fill("#f-number", "+14155550123")
    shop.submit("form[action='/app/numbers'] button")
    assert "done=offer-saved" in shop.page.url, shop.page.content()[:2000]
    assert "+14155550123" in shop.page.locator("main table").inner_text()
    shop.page.fill("#f-destination", "+14155550100")
    shop.submit("form[action='/app/numbers/settings'] button")
    assert "done=offer-saved" in shop.page.url, shop.page.content()[:2000]
    shop.open("/app/calls")
    pub = visitor("calls-pub").sign_in("affiliate@demo.leadsrefer.local", runner.passwords["affiliate"])
    pub.open("/app/calls")
    pub.open("/app/numbers")
    assert pub.page.locator("form[action='/app/numbers']").count() == 0, "affiliates register no numbers"


def test_the_demo_history_fills_the_charts(runner, visitor):
    shop = visitor("demo-shop").sign_in("advertiser@demo.leadsrefer.local", runner.passwords["advertiser"])
    shop.open("/app")
    clicks = int(shop.text(".kpi:has-text('Clicks') .value").replace(",", ""))
    assert clicks > 100, clicks
    shop.open("/app/reports?group_by=country")
    shop.open("/app/offers")
    offer = shop.page.locator("main table a").first.get_attribute("href")
    shop.open(offer)
    pub = visitor("demo-pub").sign_in("affiliate@demo.leadsrefer.local", runner.passwords["affiliate"])
    pub.open("/app/payouts")
    assert "paid" in pub.page.locator("main").inner_text() or "sent" in pub.page.locator("main").inner_text()
    pub.open("/app/conversions?status=rejected")
    assert "rejected" in pub.page.locator("main table").inner_text()


def test_another_tenants_pages_are_not_found_and_forms_need_their_token(runner, visitor):
    demo_shop = visitor("intruder").sign_in("advertiser@demo.leadsrefer.local", runner.passwords["advertiser"])
    shop = visitor("owner").sign_in(SHOP, PASSWORD)
    shop.open("/app/offers")
    offer = shop.page.locator("main table a", has_text="Running shoes").get_attribute("href")
    demo_shop.open(offer, status=404)
    demo_shop.open(offer + "/edit", status=404)
    demo_shop.open("/app/admin/accounts", status=404)
    demo_shop.open("/app/links", status=404)
    demo_shop.open("/app/no-such-page", status=404)

    refused = shop.page.request.post(shop.runner.base + offer + "/status", form={"status": "paused"})
    assert refused.status == 403, refused.status
    forged = shop.page.request.post(shop.runner.base + offer + "/status", form={"status": "paused", "csrf": "0" * 64})
    assert forged.status == 403, forged.status
    shop.open(offer)
    assert "active" in shop.page.locator("dl.facts").inner_text(), "nothing changed"

    stranger = visitor("stranger")
    login = stranger.page.request.post(stranger.runner.base + "/app/sign-in",
                                       form={"email": SHOP, "password": PASSWORD})
    assert login.status == 403, "a sign-in form without the visitor's token is refused"
    stranger.open("/app/privacy-policy")
    stranger.open("/app/sign-in")
    stranger.open("/app/password-reset")
    stranger.page.fill("#f-email", SHOP)
    stranger.submit()
    assert "done=reset-sent" in stranger.page.url
    stranger.check()
    stranger.page.goto(stranger.runner.base + "/app")
    assert "/app/sign-in" in stranger.page.url, "signed-out visitors are sent to sign in"


def test_every_page_was_seen_at_both_widths(seen):
    expected = {
        "/app", "/app/sign-in", "/app/register", "/app/verify-email", "/app/password-reset",
        "/app/password-reset/confirm", "/app/privacy-policy", "/app/offers", "/app/offers/new",
        "/app/offers/{id}", "/app/offers/{id}/edit", "/app/links", "/app/conversions",
        "/app/reports", "/app/payouts", "/app/tax", "/app/account", "/app/account/erase",
        "/app/admin/accounts", "/app/admin/flagged", "/app/admin/postbacks", "/app/admin/payouts",
        "/app/admin/privacy", "/app/admin/audit", "/app/calls", "/app/numbers",
    }
    assert expected <= seen, sorted(expected - seen)
