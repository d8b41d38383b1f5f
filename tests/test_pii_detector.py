"""The personal-data detector's recognisers (`chatbot.text.pii`), each with the
look-alikes it must leave alone, and redaction's new placeholders."""

from __future__ import annotations

from collections import Counter

import pytest

from chatbot.ingest.settings import IngestSettings
from chatbot.text.pii import Detector
from chatbot.text.redact import DEFAULT_KINDS, Redactor

COMPANY = (
    "northwindgoods.example",
    "0800 917 4455",
    "GB29 NWBK 6016 1331 9268 19",
    "@NorthwindHelp",
)
DETECTOR = Detector(allowlist=COMPANY)


def found(text: str, detector: Detector = DETECTOR) -> list[tuple[str, str]]:
    return [(s.kind, s.value) for s in detector.find(text)]


@pytest.mark.parametrize(
    "text, value",
    [
        ("Refund to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
        ("iban GB94NWBK18609139099603, thanks", "GB94NWBK18609139099603"),
        ("IBAN: GB33 BUKB 2020 1555 5555 55\nBIC: BUKBGB22", "GB33 BUKB 2020 1555 5555 55"),
    ],
)
def test_a_valid_iban_is_found_in_any_spacing(text, value):
    assert found(text) == [("iban", value)]


def test_an_iban_with_a_wrong_checksum_is_not_an_iban_nor_a_phone():
    assert found("Is DE89 3704 0044 0532 0130 01 right?") == []
    assert found("I typed NL25 INGB 3266 1663 05 but it is invalid") == []


def test_a_card_number_must_pass_luhn_and_have_a_schemes_shape():
    assert found("card 4159 0109 2815 9011 exp 04/27") == [("card", "4159 0109 2815 9011")]
    assert found("I typed 4111 1111 1111 1112 by mistake") == []  # Luhn fails
    assert found("gift card code 6035 7811 2233 4455") == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("call me on +44 20 7946 0958 after 5", "+44 20 7946 0958"),
        ("my number is (415) 555-0132, thanks", "(415) 555-0132"),
        ("Rückruf unter 030 12345678 bitte", "030 12345678"),
        ("my cell is 415-555-0176", "415-555-0176"),
    ],
)
def test_phone_numbers_are_found_by_region(text, value):
    assert found(text) == [("phone", value)]


@pytest.mark.parametrize(
    "text",
    [
        "my order number is 100234567 and it still says processing",
        "order 2024031501 was cancelled",
        "Tracking number 1Z999AA10123456784 hasn't moved",
        "It arrived on 03.04.2024, I paid 1,299.00 USD at 14:30",
        "Reference 20240315-4471, SKU 4470-221 at 12.99",
        "Version 2.6.10 crashes; ip 192.168.1.10",
    ],
)
def test_order_tracking_numbers_prices_and_dates_are_not_phones(text):
    assert found(text) == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("my email is jane dot doe at example dot com ok", "jane dot doe at example dot com"),
        ("Send it to jane[at]example[dot]com, the old one", "jane[at]example[dot]com"),
        ("mail: m.kowalski (at) example (dot) org", "m.kowalski (at) example (dot) org"),
        ("email grace.kim AT example.com pls", "grace.kim AT example.com"),
        ("reach me on kenji_w[at]example.jp", "kenji_w[at]example.jp"),
    ],
)
def test_spelled_out_email_addresses_are_found(text, value):
    assert found(text) == [("email", value)]


def test_at_and_dot_in_plain_words_are_not_an_email_address():
    assert found("Have a look at example.com for the sizes") == []
    assert found("we arrived at home dot matrix printer") == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("my DNI is 10256129S", "10256129S"),
        ("NIE: Y3860668V", "Y3860668V"),
        ("codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        ("SSN 562-17-0351", "562-17-0351"),
        ("my BSN is 517187073", "517187073"),
        ("NI number AB 12 34 56 C", "AB 12 34 56 C"),
        ("My passport number is 533380006, for customs", "533380006"),
        ("passport no. C01X00T47 for the age check", "C01X00T47"),
    ],
)
def test_national_ids_and_passport_numbers_are_found(text, value):
    assert found(text) == [("id", value)]


def test_id_look_alikes_are_not_ids():
    assert found("My order 304320171 is still processing") == []  # BSN-valid, but an order
    assert found("my DNI is 10256129T") == []  # wrong check letter
    assert found("The item code is X1234567 and size M") == []


@pytest.mark.parametrize(
    "text, value",
    [
        (
            "Please deliver to 14 Harbour Street, Leeds LS1 4AP instead",
            "14 Harbour Street, Leeds LS1 4AP",
        ),
        ("Lieferadresse: Hauptstraße 12, 10115 Berlin", "Hauptstraße 12, 10115 Berlin"),
        ("Livraison au 45 Rue de Rivoli, 75001 Paris svp", "45 Rue de Rivoli, 75001 Paris"),
        (
            "My address: Flat 3, 18 Mill Close, Bristol BS1 5TR",
            "Flat 3, 18 Mill Close, Bristol BS1 5TR",
        ),
    ],
)
def test_street_addresses_are_found(text, value):
    assert found(text) == [("address", value)]


def test_names_where_specifics_finds_them_and_after_titles():
    assert found("Hi Samir, your parcel is on its way. Kind regards,\nAnna") == [
        ("name", "Samir"),
        ("name", "Anna"),
    ]
    assert found("Please ask for Mrs Patel at reception") == [("name", "Mrs Patel")]
    assert found("Dear customer, your order has been dispatched.") == []


def test_company_constants_are_never_personal_data():
    text = (
        "Write to support@northwindgoods.example or call 0800 917 4455; pay to "
        "GB29 NWBK 6016 1331 9268 19. @NorthwindHelp, see https://help.northwindgoods.example/returns"
    )
    assert found(text) == []
    assert Redactor(allowlist=COMPANY).redact(text) == text
    assert Redactor(allowlist=(value for value in COMPANY)).redact(text) == text
    # Without the allowlist the same values are personal data.
    assert {kind for kind, _ in found(text, Detector())} == {"email", "phone", "iban", "handle"}


def test_redaction_has_typed_placeholders_for_the_new_kinds_and_counts_them():
    counts: Counter[str] = Counter()
    text = "IBAN DE89 3704 0044 0532 0130 00, passport 533380006, 14 Harbour Street, jane at example dot com"
    assert (
        Redactor().redact(text, counts) == "IBAN <IBAN>, passport <ID>, 14 Harbour Street, <EMAIL>"
    )
    assert counts == Counter(iban=1, id=1, email=1)
    assert (
        Redactor(kinds=["address"]).redact("at 14 Harbour Street, Leeds LS1 4AP.")
        == "at <ADDRESS>."
    )
    with pytest.raises(ValueError, match="unknown redaction kinds"):
        Redactor(kinds=["passport"])
    # The settings' default is the redactor's (names and addresses are slotted instead).
    assert tuple(IngestSettings().redact_kinds) == DEFAULT_KINDS
