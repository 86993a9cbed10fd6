"""The three sample messages that `make run` scores, one spam and two ham."""

SAMPLES = [
    "Hey, are we still meeting for lunch tomorrow at 12? I'll be at the usual place.",
    "Congratulations! You have WON a guaranteed 1000 cash prize. Call 09061701461 now "
    "to claim, T&Cs apply, 18+ only",
    "Ok lar... I'll call you when I get home, can you pick up some milk on the way?",
]
EXPECTED = ["ham", "spam", "ham"]
