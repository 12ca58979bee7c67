"""Word lists the semantic-cache guard reads: numbers, units, negations, antonyms, languages, well-known names."""

from __future__ import annotations

NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "half": 0.5, "twice": 2,
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
}
# "one" is left out on purpose: it is far more often a pronoun ("which one") than a quantity.
SCALE_WORDS = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
               "trillion": 1_000_000_000_000, "k": 1_000, "m": 1_000_000, "bn": 1_000_000_000}

# Canonical unit for each spelling. Units count wherever they appear.
UNITS = {
    **dict.fromkeys(["km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"], "km"),
    **dict.fromkeys(["mile", "miles", "mi", "mph"], "mile"),
    **dict.fromkeys(["meter", "meters", "metre", "metres"], "m"),
    **dict.fromkeys(["cm", "centimeter", "centimeters", "centimetre", "centimetres"], "cm"),
    **dict.fromkeys(["mm", "millimeter", "millimeters", "millimetre", "millimetres"], "mm"),
    **dict.fromkeys(["inch", "inches"], "inch"),
    **dict.fromkeys(["ft", "foot", "feet"], "ft"),
    **dict.fromkeys(["yard", "yards", "yd"], "yard"),
    **dict.fromkeys(["kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"], "kg"),
    **dict.fromkeys(["gram", "grams", "gr"], "g"),
    **dict.fromkeys(["lb", "lbs", "pound", "pounds"], "lb"),
    **dict.fromkeys(["oz", "ounce", "ounces"], "oz"),
    **dict.fromkeys(["ton", "tons", "tonne", "tonnes"], "t"),
    **dict.fromkeys(["liter", "liters", "litre", "litres", "ml", "milliliter", "millilitre"], "l"),
    **dict.fromkeys(["gallon", "gallons", "gal"], "gallon"),
    **dict.fromkeys(["cup", "cups"], "cup"),
    **dict.fromkeys(["celsius", "centigrade", "°c"], "celsius"),
    **dict.fromkeys(["fahrenheit", "°f"], "fahrenheit"),
    **dict.fromkeys(["kelvin"], "kelvin"),
    **dict.fromkeys(["ms", "millisecond", "milliseconds"], "ms"),
    **dict.fromkeys(["secs", "seconds"], "s"),
    **dict.fromkeys(["mins", "minute", "minutes"], "minute"),
    **dict.fromkeys(["hr", "hrs", "hour", "hours"], "hour"),
    **dict.fromkeys(["day", "days"], "day"),
    **dict.fromkeys(["week", "weeks"], "week"),
    **dict.fromkeys(["month", "months"], "month"),
    **dict.fromkeys(["year", "years", "yr", "yrs"], "year"),
    **dict.fromkeys(["byte", "bytes"], "byte"),
    **dict.fromkeys(["kb", "kib", "kilobyte", "kilobytes"], "kb"),
    **dict.fromkeys(["mb", "mib", "megabyte", "megabytes"], "mb"),
    **dict.fromkeys(["gb", "gib", "gigabyte", "gigabytes"], "gb"),
    **dict.fromkeys(["tb", "tib", "terabyte", "terabytes"], "tb"),
    **dict.fromkeys(["mbps", "gbps", "kbps"], "bitrate"),
    **dict.fromkeys(["ghz", "mhz", "hz", "hertz"], "hz"),
    **dict.fromkeys(["watt", "watts", "kw", "kwh", "kilowatt", "kilowatts"], "watt"),
    **dict.fromkeys(["volt", "volts"], "volt"),
    **dict.fromkeys(["amp", "amps", "ampere", "amperes"], "amp"),
    **dict.fromkeys(["calorie", "calories", "kcal"], "calorie"),
    **dict.fromkeys(["%", "percent", "percentage"], "percent"),
    **dict.fromkeys(["$", "usd", "dollar", "dollars"], "usd"),
    **dict.fromkeys(["€", "eur", "euro", "euros"], "eur"),
    **dict.fromkeys(["£", "gbp", "sterling"], "gbp"),
    **dict.fromkeys(["¥", "jpy", "yen"], "jpy"),
    **dict.fromkeys(["yuan", "rmb", "cny", "renminbi"], "cny"),
    **dict.fromkeys(["inr", "rupee", "rupees"], "inr"),
    **dict.fromkeys(["btc", "bitcoin", "bitcoins"], "btc"),
}
# Unit spellings that are also ordinary words or letters: they count only right after a number ("5 m").
UNITS_AFTER_NUMBER = {"second": "s", "sec": "s", "min": "minute", "m": "m", "g": "g", "l": "l", "s": "s", "h": "hour",
                      "c": "celsius", "f": "fahrenheit", "t": "t", "b": "byte", "d": "day", "w": "watt", "v": "volt"}

NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without", "cannot",
    "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt",
    "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint", "nope",
    # es, fr, de, it, pt
    "nunca", "nada", "nadie", "ne", "pas", "jamais", "rien", "nicht", "kein", "keine", "nie", "niemals",
    "non", "mai", "nao", "não",
}

# Pairs of opposites: a text with one side and not the other against a text with the other side differs.
ANTONYMS = [
    ("before", "after"), ("above", "below"), ("up", "down"), ("upload", "download"), ("uploading", "downloading"),
    ("increase", "decrease"), ("increasing", "decreasing"), ("increased", "decreased"), ("more", "less"),
    ("most", "least"), ("max", "min"), ("maximum", "minimum"), ("largest", "smallest"), ("biggest", "smallest"),
    ("larger", "smaller"), ("bigger", "smaller"), ("highest", "lowest"), ("high", "low"), ("higher", "lower"),
    ("fastest", "slowest"), ("faster", "slower"), ("fast", "slow"), ("best", "worst"), ("better", "worse"),
    ("buy", "sell"), ("buying", "selling"), ("bought", "sold"), ("import", "export"), ("imports", "exports"),
    ("encrypt", "decrypt"), ("encryption", "decryption"), ("encode", "decode"), ("compress", "decompress"),
    ("add", "remove"), ("enable", "disable"), ("enabled", "disabled"), ("open", "close"), ("start", "stop"),
    ("win", "lose"), ("true", "false"), ("left", "right"), ("north", "south"), ("east", "west"),
    ("first", "last"), ("older", "younger"), ("oldest", "youngest"), ("cheap", "expensive"),
    ("cheapest", "priciest"), ("hot", "cold"), ("hottest", "coldest"), ("push", "pull"), ("input", "output"),
    ("send", "receive"), ("male", "female"), ("men", "women"), ("man", "woman"), ("boy", "girl"),
    ("boys", "girls"), ("longer", "shorter"), ("longest", "shortest"), ("early", "late"), ("earlier", "later"),
    ("rise", "fall"), ("profit", "loss"), ("advantages", "disadvantages"), ("pros", "cons"), ("love", "hate"),
    ("like", "dislike"), ("agree", "disagree"), ("accept", "reject"), ("allow", "deny"), ("include", "exclude"),
    ("inside", "outside"), ("internal", "external"), ("positive", "negative"), ("private", "public"),
    ("legal", "illegal"), ("possible", "impossible"), ("valid", "invalid"), ("safe", "unsafe"),
    ("success", "failure"), ("succeed", "fail"), ("import", "export"), ("login", "logout"),
    ("install", "uninstall"), ("mount", "unmount"), ("lock", "unlock"), ("connect", "disconnect"),
    ("subscribe", "unsubscribe"), ("ascending", "descending"), ("asc", "desc"), ("minimum", "maximum"),
    ("entry", "exit"), ("arrival", "departure"), ("arrive", "depart"), ("client", "server"),
    ("sunrise", "sunset"), ("plus", "minus"), ("add", "subtract"), ("multiply", "divide"),
    ("oppose", "support"), ("opposes", "supports"), ("smart", "dumb"), ("smart", "stupid"), ("rich", "poor"),
    ("strong", "weak"), ("strongest", "weakest"), ("heavy", "light"), ("heaviest", "lightest"), ("wet", "dry"),
    ("alive", "dead"), ("war", "peace"), ("guilty", "innocent"), ("liberal", "conservative"),
    ("gone", "back"), ("come", "go"), ("came", "went"), ("leave", "return"), ("arrived", "left"),
    ("democrat", "republican"), ("democrats", "republicans"), ("sunni", "shia"), ("catholic", "protestant"),
]

# Specific question types: two questions that ask for different kinds of answer differ.
QUESTION_TYPES = {"when": "time", "where": "place", "who": "person", "whom": "person", "whose": "person",
                  "why": "reason"}
HOW_TYPES = {"many": "count", "much": "amount", "long": "duration", "old": "age", "far": "distance",
             "big": "size", "tall": "height", "often": "frequency", "fast": "speed"}

# Verbs that open a request rather than a statement ("Explain why ..." is a question without "?").
IMPERATIVES = {"tell", "explain", "show", "give", "list", "describe", "write", "find", "help", "let", "please",
               "define", "compare", "summarize", "summarise", "translate", "convert", "calculate", "name",
               "suggest", "recommend", "generate", "create", "make", "fix", "check", "implement", "rewrite"}

# Direction markers: the item right after one of these words takes the role.
DIRECTION_MARKERS = {"from": "source", "to": "target", "into": "target", "towards": "target", "toward": "target",
                     "than": "compared", "->": "target", "→": "target", "vs": "versus", "versus": "versus"}
# Before a unit, "in" also names the target ("how many km in a mile").
UNIT_MARKERS = {"in": "target", "per": "per"}

# Function words of a few Latin-script languages, to tell them apart.
STOPWORDS = {
    "en": {"the", "is", "are", "what", "how", "of", "and", "to", "in", "it", "do", "does", "i", "you", "can",
           "for", "with", "this", "that", "which", "my", "on", "be", "was", "why", "where", "when", "who"},
    "es": {"el", "la", "los", "las", "es", "qué", "que", "cómo", "como", "de", "del", "y", "en", "por",
           "para", "una", "un", "cuál", "cual", "dónde", "está", "son", "con", "mi", "se"},
    "fr": {"le", "la", "les", "est", "quel", "quelle", "comment", "de", "du", "des", "et", "en", "pour",
           "une", "un", "où", "je", "vous", "avec", "dans", "ce", "qui", "sont", "pourquoi", "mon"},
    "de": {"der", "die", "das", "ist", "was", "wie", "und", "zu", "in", "ich", "sie", "mit", "für", "ein",
           "eine", "nicht", "warum", "wo", "wann", "von", "den", "dem", "sind", "mein"},
    "it": {"il", "lo", "la", "gli", "è", "che", "come", "di", "del", "e", "per", "una", "un", "dove",
           "perché", "sono", "con", "mio", "qual", "quale", "cosa"},
    "pt": {"o", "os", "as", "é", "que", "como", "de", "do", "da", "e", "em", "para", "uma", "um", "onde",
           "por", "são", "com", "meu", "qual", "não"},
    "nl": {"de", "het", "een", "is", "wat", "hoe", "van", "en", "in", "ik", "je", "met", "voor", "waar",
           "waarom", "zijn", "niet", "mijn", "welke"},
}

# Ordinary words that a capital letter (sentence start, emphasis, a title) does not make a name.
COMMON_WORDS = set("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just let me more most my myself no nor not now of
off on once only or other our ours out over own same she should so some such than that the their theirs them
then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself im ive id ill youre youve dont doesnt didnt cant wont isnt
arent wasnt hi hello hey thanks thank please yes yeah ok okay oh well so read more see also note edit update
re sorry dear sir madam mr mrs ms dr lol omg btw imho imo fyi faq tldr quote quoted posted originally wrote
says said reply answer question first last next new old good bad great best better really actually maybe
perhaps just still even ever never always sometimes often again however therefore thus hence anyway indeed
like get got make made take took give gave tell told show shown explain describe list write find help use using
one two many much every each another something anything nothing everything someone anyone everyone
""".split())

# Well-known names that users often type in lower case. Capitalised words are caught without a list.
GAZETTEER = set("""
afghanistan albania algeria argentina armenia australia austria azerbaijan bahrain bangladesh belarus belgium
bolivia bosnia brazil bulgaria cambodia cameroon canada chile china colombia congo croatia cuba cyprus czechia
denmark ecuador egypt estonia ethiopia finland france georgia germany ghana greece guatemala haiti honduras
hungary iceland india indonesia iran iraq ireland israel italy jamaica japan jordan kazakhstan kenya korea
kosovo kuwait laos latvia lebanon libya lithuania luxembourg madagascar malaysia mali malta mexico moldova
monaco mongolia montenegro morocco mozambique myanmar namibia nepal netherlands holland zealand nicaragua niger
nigeria norway oman pakistan panama paraguay peru philippines poland portugal qatar romania russia rwanda
scotland senegal serbia singapore slovakia slovenia somalia spain sudan sweden switzerland syria taiwan
tanzania thailand tunisia turkey uganda ukraine uruguay uzbekistan venezuela vietnam wales yemen zambia zimbabwe
england britain uk usa america europe asia africa antarctica oceania atlantic pacific arctic mediterranean
paris london berlin madrid rome lisbon dublin amsterdam brussels vienna prague warsaw budapest athens oslo
stockholm helsinki copenhagen moscow kyiv kiev istanbul ankara cairo nairobi lagos johannesburg tokyo kyoto
osaka beijing shanghai shenzhen hongkong seoul delhi mumbai bangalore bangkok jakarta manila hanoi sydney
melbourne auckland toronto vancouver montreal ottawa chicago boston seattle houston dallas austin denver
miami atlanta philadelphia phoenix detroit washington california texas florida york jersey ohio oregon
nevada arizona colorado virginia carolina mexico lima bogota santiago caracas havana dubai doha riyadh
tehran baghdad karachi lahore dhaka singapore zurich geneva munich hamburg frankfurt milan naples barcelona
valencia seville lyon marseille porto edinburgh manchester liverpool glasgow cardiff belfast
english french german spanish italian portuguese dutch russian chinese mandarin cantonese japanese korean
arabic hindi bengali urdu turkish polish greek swedish norwegian danish finnish hungarian czech romanian
ukrainian hebrew persian farsi thai vietnamese indonesian malay swahili latin
american british canadian australian mexican brazilian indian european african asian
january february march april june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
mercury venus mars jupiter saturn uranus neptune pluto
python java javascript typescript kotlin ruby php perl scala haskell golang csharp cpp fortran
cobol matlab sql postgres postgresql mysql sqlite mongodb redis kafka docker kubernetes linux ubuntu debian
fedora centos macos ios android firefox powerpoint outlook
google apple microsoft amazon facebook netflix tesla ibm intel amd nvidia samsung sony twitter
openai anthropic github gitlab aws azure gcp
""".split())
