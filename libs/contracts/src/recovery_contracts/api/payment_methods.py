"""Closed sets that describe payment methods (Hyperswitch's `PaymentMethod`, subtypes, card networks)."""

from __future__ import annotations

from enum import StrEnum


class PaymentMethod(StrEnum):
    """`payment_method_type` in v2 bodies (Hyperswitch's `PaymentMethod`)."""

    CARD = "card"
    CARD_REDIRECT = "card_redirect"
    PAY_LATER = "pay_later"
    WALLET = "wallet"
    BANK_REDIRECT = "bank_redirect"
    BANK_TRANSFER = "bank_transfer"
    CRYPTO = "crypto"
    BANK_DEBIT = "bank_debit"
    REWARD = "reward"
    REAL_TIME_PAYMENT = "real_time_payment"
    UPI = "upi"
    VOUCHER = "voucher"
    GIFT_CARD = "gift_card"
    OPEN_BANKING = "open_banking"
    MOBILE_PAYMENT = "mobile_payment"


class PaymentMethodSubtype(StrEnum):
    """`payment_method_subtype` / `payment_method_sub_type`: the subset of Hyperswitch's `PaymentMethodType`
    a recovery can charge off-session (cards and card-backed wallets, bank debits)."""

    CREDIT = "credit"
    DEBIT = "debit"
    CARD = "card"
    APPLE_PAY = "apple_pay"
    GOOGLE_PAY = "google_pay"
    PAYPAL = "paypal"
    ACH = "ach"
    SEPA = "sepa"
    BACS = "bacs"
    BECS = "becs"


class CardNetwork(StrEnum):
    """Hyperswitch's `CardNetwork` (PascalCase on the wire, as in the seed: "Visa", "Mastercard")."""

    VISA = "Visa"
    MASTERCARD = "Mastercard"
    AMERICAN_EXPRESS = "AmericanExpress"
    JCB = "JCB"
    DINERS_CLUB = "DinersClub"
    DISCOVER = "Discover"
    CARTES_BANCAIRES = "CartesBancaires"
    UNION_PAY = "UnionPay"
    INTERAC = "Interac"
    RU_PAY = "RuPay"
    MAESTRO = "Maestro"
    STAR = "Star"
    PULSE = "Pulse"
    ACCEL = "Accel"
    NYCE = "Nyce"


class PaymentExperience(StrEnum):
    REDIRECT_TO_URL = "redirect_to_url"
    INVOKE_SDK_CLIENT = "invoke_sdk_client"
    DISPLAY_QR_CODE = "display_qr_code"
    ONE_CLICK = "one_click"
    LINK_WALLET = "link_wallet"
    INVOKE_PAYMENT_APP = "invoke_payment_app"
    DISPLAY_WAIT_SCREEN = "display_wait_screen"
    COLLECT_OTP = "collect_otp"
