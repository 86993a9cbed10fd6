"""The modern training supplement: 2020s A2P ham and smishing, generated from templates.

The UCI corpus (2011) holds person-to-person chat as ham and almost no machine-sent
notifications, so a model trained on it alone calls every business message spam. This module
writes, deterministically from a seed, application-to-person (A2P) ham in nine categories and
smishing in nine categories that imitate exactly those messages. Every template, brand and
phrase below was written for this project (licence: the project's own); see
``data/modern/DATA_CARD.md``.

The separate evaluation set (``data/modern/eval.tsv``) was written apart from this file, with
other brands and other phrasings; :func:`check_disjoint` keeps the two apart.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from spamq.text import normalize

HAM_CATEGORIES = ("otp", "delivery", "appointment", "bank_alert", "receipt", "utility",
                  "school", "employer", "ride_food")
SPAM_CATEGORIES = ("parcel_fee", "bank_lock", "toll_fine", "tax_refund", "hi_mum", "job_task",
                   "crypto", "account_suspended", "prize")


@dataclass(frozen=True)
class Row:
    text: str
    label: int  # 0 ham, 1 spam
    category: str
    template: int  # index of the template within its category


# --- slot vocabularies (training brands only; the evaluation set uses others) -----------------
OTP_SERVICES = ["Google", "Microsoft", "Apple", "WhatsApp", "Facebook", "Instagram", "PayPal",
                "Amazon", "Uber", "Steam", "LinkedIn", "Coinbase", "X", "Yahoo", "eBay",
                "Airbnb", "Booking.com", "Zoom"]
CARRIERS = ["Royal Mail", "DPD", "Evri", "UPS", "FedEx", "DHL", "Amazon", "USPS",
            "Canada Post", "Australia Post", "PostNL", "InPost", "An Post"]
BANKS = ["Barclays", "HSBC", "Chase", "Wells Fargo", "Santander", "Lloyds", "NatWest", "Monzo",
         "Revolut", "Bank of America", "Capital One", "ING", "CommBank", "Amex"]
SHOPS = ["Tesco", "Starbucks", "Shell", "Boots", "IKEA", "Argos", "Currys", "Trainline",
         "Apple", "Target", "Walmart", "Zara", "Waitrose", "Greggs", "Pret"]
UTILITIES = ["British Gas", "EDF", "Octopus Energy", "Thames Water", "Verizon", "Vodafone", "EE",
             "Comcast", "PG&E", "BT", "Sky", "Virgin Media", "Con Edison"]
SCHOOLS = ["St Mary's Primary", "Oakfield Academy", "Riverside High", "Greenway School",
           "Hillcrest Elementary", "Kingsbury College", "Maple Leaf Nursery"]
EMPLOYERS = ["Acme Logistics", "Northgate Retail", "Bluebird Care", "CityHealth Trust",
             "Summit Warehousing", "Harbor Hotels", "the store"]
CLINICS = ["Parkside Surgery", "Bright Smile Dental", "Specsavers", "CVS Pharmacy",
           "Walgreens", "City Vets", "Kwik Fit", "Elm Tree Medical Centre", "Style Studio"]
RIDES = ["Uber", "Lyft", "Bolt"]
FOOD = ["Deliveroo", "Just Eat", "DoorDash", "Uber Eats", "Domino's"]
NAMES = ["Sam", "Priya", "Tom", "Aisha", "Marco", "Chloe", "Daniel", "Fatima", "Jake", "Mei",
         "Olu", "Sofia", "Ben", "Nadia"]
CARS = ["Toyota Prius", "silver VW Golf", "black Skoda Octavia", "white Tesla Model 3",
        "blue Kia Niro", "grey Ford Focus"]
FOODS = ["2x Margherita", "Chicken burrito bowl", "Pad thai", "Large pepperoni",
         "Sushi set", "Veggie burger meal"]
TLDS = [".com", ".top", ".xyz", ".info", ".click", ".live", ".vip", ".icu", ".cc", ".shop"]
CURRENCIES = ["£", "$", "€", "AU$", "C$"]
TOLLS = ["EZDriveMA", "TxTag", "NTTA", "PayByPlate", "Dartford Crossing", "Toll Services"]
TAX = ["HMRC", "IRS", "ATO", "CRA", "Revenue"]
CRYPTO = ["Bitcoin", "BTC", "ETH", "USDT", "crypto"]


def _code(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _ref(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(rng.choice(
        (8, 10, 12))))


def _money(rng: random.Random, lo: float, hi: float) -> str:
    cur = rng.choice(CURRENCIES)
    value = rng.uniform(lo, hi)
    return f"{cur}{value:,.2f}" if rng.random() < 0.5 else f"{cur}{value:.2f}"


def _time(rng: random.Random) -> str:
    h, m = rng.randint(7, 19), rng.choice((0, 15, 30, 45))
    return rng.choice((f"{h:02d}:{m:02d}", f"{(h - 1) % 12 + 1}:{m:02d}{'am' if h < 12 else 'pm'}"))


def _date(rng: random.Random) -> str:
    day = rng.randint(1, 28)
    month = rng.choice(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                        "Nov", "Dec"))
    wd = rng.choice(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat"))
    return rng.choice((f"{wd} {day} {month}", f"{day:02d}/{rng.randint(1, 12):02d}",
                       f"{month} {day}", f"{wd}day".replace("Thuday", "Thursday")
                       .replace("Tueday", "Tuesday").replace("Wedday", "Wednesday")
                       .replace("Satday", "Saturday")))


def _legit_url(rng: random.Random, brand: str) -> str:
    b = "".join(ch for ch in brand.lower() if ch.isalnum())
    return rng.choice((f"https://{b}.com/track", f"{b}.com/app", f"https://www.{b}.co.uk/account",
                       f"{b}.com/r/{_ref(rng).lower()[:6]}"))


def _scam_url(rng: random.Random, brand: str) -> str:
    b = "".join(ch for ch in brand.lower() if ch.isalnum())
    word = rng.choice(("secure", "verify", "help", "pay", "update", "support", "redeliver",
                       "claim", "login", "portal"))
    tld = rng.choice(TLDS)
    return rng.choice((f"https://{b}-{word}{tld}", f"http://{word}-{b}{rng.randint(1, 99)}{tld}",
                       f"{b}.{word}{tld}/{_ref(rng).lower()[:5]}",
                       f"https://bit.ly/{_ref(rng)[:7]}", f"{word}{b}-uk{tld}"))


def _slots(rng: random.Random) -> dict[str, str]:
    carrier = rng.choice(CARRIERS)
    bank = rng.choice(BANKS)
    return {
        "svc": rng.choice(OTP_SERVICES), "code": _code(rng, rng.choice((4, 6, 6, 8))),
        "carrier": carrier, "bank": bank, "shop": rng.choice(SHOPS),
        "util": rng.choice(UTILITIES), "school": rng.choice(SCHOOLS),
        "employer": rng.choice(EMPLOYERS), "clinic": rng.choice(CLINICS),
        "ride": rng.choice(RIDES), "food": rng.choice(FOOD), "name": rng.choice(NAMES),
        "car": rng.choice(CARS), "meal": rng.choice(FOODS), "ref": _ref(rng),
        "last4": _code(rng, 4), "amt": _money(rng, 3, 400), "small": _money(rng, 0.99, 4.99),
        "big": _money(rng, 250, 4800), "time": _time(rng), "time2": _time(rng),
        "date": _date(rng), "mins": str(rng.choice((3, 5, 8, 10, 12, 15, 20))),
        "plate": "".join(rng.choice(string.ascii_uppercase) for _ in range(2))
        + _code(rng, 2) + " " + "".join(rng.choice(string.ascii_uppercase) for _ in range(3)),
        "toll": rng.choice(TOLLS), "tax": rng.choice(TAX), "coin": rng.choice(CRYPTO),
        "surl": _scam_url(rng, rng.choice((carrier, bank, "account", "parcel"))),
        "lurl": _legit_url(rng, rng.choice((carrier, bank))),
        "phone": "0" + _code(rng, 10), "pct": str(rng.choice((5, 10, 15, 20, 25))),
    }


# --- templates ---------------------------------------------------------------------------------
HAM: dict[str, list[str]] = {
    "otp": [
        "Your {svc} verification code is {code}. Don't share it with anyone.",
        "{code} is your {svc} code. Never share this code.",
        "<#> {svc}: your security code is {code}. It expires in {mins} minutes.",
        "{svc} code: {code}. If you didn't request this, you can ignore this message.",
        "Use {code} to sign in to {svc}. We will never call you to ask for this code.",
        "G-{code} is your Google verification code.",
        "Your {bank} one-time passcode is {code}. It's valid for {mins} mins. Do not give it to "
        "anyone, even {bank} staff.",
        "{code} is your login code for {svc}. Reply STOP to opt out.",
        "Enter {code} to confirm your new phone number on {svc}.",
        "[{svc}] Verification code: {code}",
        "Your {svc} password reset code is {code}. Didn't ask? Secure your account in the app.",
        "To finish setting up {svc}, enter code {code}.",
    ],
    "delivery": [
        "{carrier}: your parcel {ref} will be delivered today between {time} and {time2}.",
        "Your {carrier} driver is {mins} stops away. Track it in the app.",
        "{carrier}: we delivered your parcel at {time}. It was left in your safe place.",
        "Good news! Your order from {shop} has been dispatched with {carrier}. Tracking {ref}.",
        "{carrier}: sorry we missed you. Your parcel is at your local collection point; bring ID.",
        "Your {shop} order is out for delivery today. Estimated arrival {time}-{time2}.",
        "{carrier} will deliver your package on {date}. Need to change it? Use the {carrier} "
        "app.",
        "Delivered: your parcel was handed to a neighbour at no. {mins}. {carrier}",
        "Hi {name}, your {shop} click & collect order is ready to pick up. Order {ref}.",
        "{carrier}: parcel {ref} is in the locker. Collection code {code}. Collect within 3 "
        "days.",
        "Your delivery from {shop} is running late. New estimate: {date}. Sorry about that.",
    ],
    "appointment": [
        "Reminder: your appointment at {clinic} is on {date} at {time}. Reply C to cancel.",
        "{clinic}: {name}, we look forward to seeing you {date} at {time}.",
        "Your booking is confirmed: {date}, {time} at {clinic}. Ref {ref}.",
        "Hi {name}, this is {clinic}. Please arrive 10 minutes early for your {time} "
        "appointment.",
        "{clinic}: your flu jab is booked for {date} at {time}. To rearrange call us.",
        "Your table for 2 at 7:30pm on {date} is confirmed. See you soon!",
        "Appointment reminder from {clinic}: {date} {time}. Reply YES to confirm or NO to cancel.",
        "{clinic}: your eye test is due. Book online or call the practice.",
        "Your car service at {clinic} is booked for {date}. Drop off by {time}.",
        "Your vaccination appointment has been moved to {date} at {time}. {clinic}",
    ],
    "bank_alert": [
        "{bank}: a payment of {amt} to {shop} was made on your card ending {last4}.",
        "{bank}: your salary of {big} has arrived. Your balance is {big}.",
        "{bank} alert: your balance is below {small}. Log in to the app to top up.",
        "{bank}: did you try to pay {amt} at {shop}? Reply Y if it was you or N if not.",
        "Your {bank} card ending {last4} has been posted and should arrive within 5 working "
        "days.",
        "{bank}: your direct debit of {amt} to {util} is due tomorrow.",
        "{bank}: we've sent your monthly statement to the app.",
        "You've received {amt} from {name}. {bank}",
        "{bank}: your new PIN reminder will arrive by post. We'll never text you asking for it.",
        "{bank}: your card ending {last4} was declined at {shop}: insufficient funds.",
        "{bank}: {amt} has been moved to your savings pot.",
    ],
    "receipt": [
        "Thanks for your payment of {amt} to {shop}. Receipt {ref}.",
        "{shop}: your order {ref} is confirmed. Total {amt}.",
        "Payment received: {amt} for invoice {ref}. Thank you!",
        "Your refund of {amt} from {shop} has been processed. Allow 3-5 days.",
        "{shop} receipt: {amt} paid by card ending {last4} on {date}.",
        "You sent {amt} to {name}. Ref {ref}.",
        "Thanks for shopping at {shop}! You earned {mins} points. Balance: 1{code} points.",
        "Your {shop} subscription has renewed for {amt}. Manage it in your account settings.",
        "Your e-ticket for {date} is in the {shop} app. Booking ref {ref}.",
        "Order {ref}: we've received your return. Your refund of {amt} is on its way.",
    ],
    "utility": [
        "{util}: your bill of {amt} is ready. It will be collected on {date}.",
        "{util}: please send a meter reading by {date} so your bill is accurate.",
        "{util}: planned work in your area on {date} {time}-{time2} may interrupt your supply.",
        "{util}: thanks, we've received your payment of {amt}.",
        "Your {util} broadband engineer visit is confirmed for {date}, {time}-{time2}.",
        "{util}: you've used 80% of your monthly data. Add more in the app.",
        "{util}: your new tariff starts on {date}. No action needed.",
        "{util}: the outage in your area has been fixed. Sorry for the disruption.",
        "{util}: your contract ends on {date}. See your options in the app.",
        "{util}: your smart meter appointment is {date} between {time} and {time2}.",
    ],
    "school": [
        "{school}: the school will close at 1pm on {date} for staff training.",
        "{school}: your child was marked absent this morning. Please call the office.",
        "Reminder from {school}: parents' evening is on {date}. Book a slot on the parent app.",
        "{school}: trip payment of {amt} is due by {date}. Pay on ParentPay.",
        "{school}: due to snow the school is closed today. Work is on Google Classroom.",
        "{school}: PE kit needed on {date}. Thank you.",
        "Dear parent, {school} term starts on {date} at 8:45am.",
        "{school}: the lost property table is out until Friday.",
        "{school}: Year 6 photos are online. Order by {date}.",
        "{school}: {name}'s lunch account is low. Please top up.",
    ],
    "employer": [
        "{employer}: your shift on {date} is {time} to {time2}. Reply to confirm.",
        "{employer}: your payslip for this month is ready in the HR portal.",
        "{employer}: the office is closed on {date}. Please work from home.",
        "{employer}: new rota for next week is published. Check the app.",
        "IT from {employer}: scheduled maintenance tonight {time}-{time2}. Save your work.",
        "{employer}: fire drill today at {time}. Please leave by the nearest exit.",
        "Hi {name}, can you cover the {time} shift at {employer} on {date}? Reply Y/N.",
        "{employer}: your holiday request for {date} has been approved.",
        "{employer} HR: please complete your annual training by {date}.",
        "{employer}: site closed due to weather. Do not come in today.",
    ],
    "ride_food": [
        "{ride}: your driver {name} is arriving in {mins} min in a {car}.",
        "{ride}: {name} has arrived. Your {car} is waiting outside.",
        "Thanks for riding with {ride}. Your trip cost {amt}. Receipt in the app.",
        "{food}: your order is being prepared. Estimated delivery {time}.",
        "{food}: {name} is on the way with your order!",
        "{food}: your order has been delivered. Enjoy your meal!",
        "{food}: {meal} order confirmed. Total {amt}.",
        "Your {ride} code is {last4}. Share it with your driver to start the trip.",
        "{food}: sorry, your order is running {mins} min late.",
        "{ride}: rate your trip with {name} in the app.",
        "{food}: your rider {name} is nearby. Please be ready at the door.",
    ],
}

SPAM: dict[str, list[str]] = {
    "parcel_fee": [
        "{carrier}: your parcel is on hold due to an unpaid shipping fee of {small}. Pay now: "
        "{surl}",
        "{carrier}: we could not deliver your package. Reschedule here: {surl}",
        "Your parcel {ref} is waiting. A customs fee of {small} must be paid: {surl}",
        "{carrier}: the address on your parcel is incomplete. Update it within 24h: {surl}",
        "Final notice: your package will be returned to sender. Confirm delivery at {surl}",
        "{carrier} ALERT: delivery attempt failed. Small fee {small} needed {surl}",
        "Your {carrier} package has an incorrect house number. Please update: {surl}",
        "We tried to deliver your parcel today. Pay {small} for redelivery: {surl}",
        "{carrier}: your item is held at our depot. Release it for {small} at {surl}",
        "Hello, the shipment {ref} cannot be delivered due to missing details. {surl}",
    ],
    "bank_lock": [
        "{bank}: your account has been locked due to unusual activity. Verify now: {surl}",
        "{bank}: a new payee was added to your account. If this was NOT you visit {surl}",
        "{bank} security: your card ending {last4} has been suspended. Reactivate: {surl}",
        "We detected a login from a new device. If it wasn't you, secure your account at "
        "{surl}",
        "{bank}: payment of {big} is pending. To cancel, call {phone} immediately.",
        "{bank}: your online banking will be frozen today unless you confirm your details: "
        "{surl}",
        "Fraud alert: suspicious transaction of {amt} on your account. Stop it here {surl}",
        "{bank}: please update your security details to avoid restriction {surl}",
        "This is {bank}'s fraud team. Your money is at risk; move it to a safe account, call "
        "{phone}",
        "{bank}: your card has been blocked. Unlock it at {surl}",
    ],
    "toll_fine": [
        "{toll}: you have an unpaid toll of {small}. Pay by {date} to avoid a late fee: {surl}",
        "Final notice: outstanding toll balance {small}. Avoid penalties: {surl}",
        "Your vehicle {plate} has an unpaid road charge. Settle it today {surl}",
        "You have an unpaid parking fine of {amt}. Pay now to avoid court action: {surl}",
        "{toll}: our records show an unpaid trip. Fee {small}. Pay at {surl}",
        "Traffic violation notice: speeding fine of {amt} due. Pay online {surl}",
        "DVLA: your vehicle tax payment failed. Update your details to avoid a fine: {surl}",
        "Penalty charge notice for {plate}. Pay {amt} within 48 hours {surl}",
    ],
    "tax_refund": [
        "{tax}: you are eligible for a tax refund of {big}. Claim it here: {surl}",
        "{tax} notice: your tax rebate of {amt} is ready. Submit your details {surl}",
        "We owe you {big} in overpaid tax. Complete the form to receive it: {surl}",
        "{tax}: a refund was issued but could not be paid. Update your bank details {surl}",
        "Your {tax} rebate expires today. Claim now: {surl}",
        "{tax}: you have an unpaid tax bill of {amt}. Pay now to avoid arrest: {surl}",
        "Government cost of living payment of {amt} is waiting for you. Apply: {surl}",
        "{tax}: your refund of {big} is pending verification {surl}",
    ],
    "hi_mum": [
        "Hi Mum, this is my new number. My phone broke. Can you text me on WhatsApp?",
        "Hey mum it's me, I dropped my phone in the toilet lol this is my new number, save it",
        "Hi Dad, new number. I need to pay a bill today but my banking app is locked, can you "
        "help?",
        "Mum it's {name}, lost my phone. Can you send {amt} to my friend's account? I'll pay "
        "you back tomorrow",
        "Hi mum, phone's broken, using a friend's. Can you transfer {amt} for my rent? It's "
        "urgent x",
        "Hello mum, this is my temporary number. Are you free? I need a favour",
        "Hey dad it's me, new phone. Save this number and delete the old one. Can you do me a "
        "quick favour?",
        "Mum, my card is blocked, can you pay this invoice for me? I'll send you the details",
        "Hi it's me, my phone screen smashed. Message me on this number on WhatsApp please x",
        "Hi mom, I'm stuck, my account is frozen and I need {amt} for a bill today. Can you "
        "help?",
    ],
    "job_task": [
        "Hi, I'm {name} from a recruitment agency. Part-time online job, earn {big} a week from "
        "home. Reply YES",
        "We saw your CV. Remote job: rate products online, 1 hour a day, daily pay {amt}. "
        "WhatsApp {phone}",
        "Hello! Our company is hiring. Simple tasks on your phone, earn {amt} per day. Interested?",
        "Flexible job: like videos and get paid {small} per task. Contact our HR on Telegram",
        "Hi, are you looking for work? Earn {big} weekly, no experience needed. Reply 1 to know "
        "more",
        "Your application was approved. Start today and earn {amt} daily: {surl}",
        "Amazon is hiring remote reviewers, salary {big}/week. Apply {surl}",
        "Part time job offer: boost app ratings from home, commission paid daily. Text {phone}",
    ],
    "crypto": [
        "Your {coin} wallet has received {big}. Withdraw it before it expires: {surl}",
        "Invest {amt} in {coin} today and get {big} back in 7 days. Guaranteed. {surl}",
        "Congrats! You've been selected for a {coin} airdrop worth {big}. Claim: {surl}",
        "Your crypto account shows a pending withdrawal of {big}. Not you? Cancel at {surl}",
        "My mentor doubled my {coin} in a week. Join our trading group: {surl}",
        "Last chance: {coin} presale ends today, {pct}x returns. Buy now {surl}",
        "Your exchange account will be closed. Verify your wallet to keep your {coin}: {surl}",
        "Earn {pct}% daily with our AI crypto bot. Start with just {small} {surl}",
    ],
    "account_suspended": [
        "{svc}: your account has been suspended due to a billing problem. Update payment: {surl}",
        "Your {svc} account will be deleted in 24 hours. Verify now: {surl}",
        "{svc}: we couldn't renew your subscription. Update your card to keep access {surl}",
        "Your {util} service will be disconnected today due to non-payment. Pay now {surl}",
        "{svc} security: unusual sign-in detected. Confirm your identity at {surl}",
        "Your streaming plan payment was declined. Update your details to keep watching {surl}",
        "Apple ID locked. Unlock it within 12 hours at {surl}",
        "{svc}: your account is restricted. Confirm your details to restore it {surl}",
        "{util}: your account is overdue. To avoid disconnection pay {amt} at {surl}",
    ],
    "prize": [
        "Congratulations! You've won a {shop} gift card worth {big}. Claim it here: {surl}",
        "You have been selected to receive a free iPhone 15. Pay {small} shipping: {surl}",
        "{shop} customer survey: answer 3 questions and win {big}. {surl}",
        "WINNER! Your number was drawn for {big}. Claim before midnight {surl}",
        "You have unclaimed loyalty points worth {amt} that expire today. Redeem: {surl}",
        "Dear customer, you won our monthly draw. To receive your prize visit {surl}",
        "Free {shop} voucher for you! Limited time: {surl}",
        "Your reward of {big} is waiting. Confirm your address: {surl}",
    ],
}

# Variations applied after slot filling (hand-written, per label).
HAM_SUFFIXES = ["", "", "", " Reply STOP to opt out.", " Txt STOP to 60060 to stop msgs.",
                " Do not reply to this message.", " Msg&data rates may apply."]
SPAM_SUFFIXES = ["", "", "", " Reply STOP to opt out.", " Act now.", " Thank you.",
                 " Ignore if already paid."]


def _vary(text: str, rng: random.Random, suffixes: list[str]) -> str:
    text = text + rng.choice(suffixes)
    r = rng.random()
    if r < 0.06:
        text = text.upper()
    elif r < 0.12:
        text = text.lower()
    if rng.random() < 0.05:
        text = text.replace(". ", ".  ")
    return text


def generate(*, per_category: int = 60, seed: int = 13) -> list[Row]:
    """``per_category`` distinct rows per category (fewer if the templates run out)."""
    rng = random.Random(seed)
    rows: list[Row] = []
    seen: set[str] = set()
    for label, table, suffixes in ((0, HAM, HAM_SUFFIXES), (1, SPAM, SPAM_SUFFIXES)):
        for category, templates in table.items():
            made, tries = 0, 0
            while made < per_category and tries < per_category * 20:
                tries += 1
                t = (made + tries) % len(templates)
                text = _vary(templates[t].format(**_slots(rng)), rng, suffixes)
                key = normalize(text)
                if key in seen:
                    continue
                seen.add(key)
                rows.append(Row(text=text, label=label, category=category, template=t))
                made += 1
    return rows


def split_rows(rows: list[Row], *, validation_fraction: float = 0.2,
               seed: int = 13) -> tuple[list[Row], list[Row]]:
    """(train, validation), stratified by category."""
    rng = random.Random(seed + 1)
    train, val = [], []
    by_cat: dict[str, list[Row]] = {}
    for r in rows:
        by_cat.setdefault(r.category, []).append(r)
    for cat in sorted(by_cat):
        group = by_cat[cat][:]
        rng.shuffle(group)
        k = round(len(group) * validation_fraction)
        val += group[:k]
        train += group[k:]
    return train, val


def counts(rows: list[Row]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.category] = out.get(r.category, 0) + 1
    return dict(sorted(out.items()))


def check_disjoint(rows: list[Row], eval_texts: list[str]) -> None:
    """Raise if any generated text equals (after normalisation) an evaluation text."""
    gen = {normalize(r.text) for r in rows}
    clash = [t for t in eval_texts if normalize(t) in gen]
    if clash:
        raise ValueError(f"{len(clash)} evaluation texts are also generated, e.g. {clash[0]!r}")
