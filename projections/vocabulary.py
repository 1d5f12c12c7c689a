"""The words a message is read with, in Romanian and English: stop words, words that only
announce a fact or a time, and the folding of diacritics (pure, no I/O)."""

from __future__ import annotations

import unicodedata

_FOLD = str.maketrans({"ă": "a", "â": "a", "î": "i", "ș": "s", "ş": "s", "ț": "t", "ţ": "t"})

STOP_RO = frozenset("""
a ai al ale alt alta alte altele altceva altcineva am ar are as asa asadar asta astazi aceasta acest
acesta acestea acestei acestia acestui acel acela acelasi acele acelea acelor acolo acum adica aici
alo asemenea ati atat atata atatea atati atunci au avea aveam aveti avem avut azi

bine buna bun bune bunaziua

ca caci care careia caruia cat cata cate cati catre cand ce cea ceea cei cel cele celor ceva chiar
cine cineva cu cui cum cumva

da daca diseara dansul dansa dar de deci deja desi despre din dintr dintre doar doresc dori dorim dorit
dumneata dumneavoastra dupa dvs

e ea ei el ele era erau este esti eu

face facem faceti fara fel fi fie fiind fim fiu fost foarte

hei hai

iar ii il imi in inca insa intr intre isi

la le li lor lui

m ma maine mai mea mei mersi merci meu mi mie mine mult multa multe multi multam multumesc multumim
multumiri

n ne neaparat nevoie nici nimic niste noastra noastre noi nostri nostru nou nu

o ok ora ore orele oricare ori orice

pa pai pe pentru peste pana poate pot poti prea prin printr putea puteam puteti

rog

sa sal salut salutare sau se seara si sint sintem spune spuneti spre sub sunt suntem sunteti

ta tale tau te ti tine toata toate tot toti totul tu

ul un una unde unei unele unii unor unu unui unul

va vad vom voi voastra vostru vreau vrea vrem vreti vreo vreun

zi ziua
""".split())

STOP_EN = frozenset("""
a about above after again against all also am an and any anybody anyone anything are aren arent as
at

be because been before being below between both but by bye

can cannot cant could couldn couldnt

dear did didn didnt do does doesn doesnt doing don dont down during

each either else etc ever every

few for from further

get gets getting got

had hadn hadnt has hasn hasnt have haven havent having he hello her here hers herself hey hi him
himself his how

i if im in into is isn isnt it its itself ive

just

kind know

let lets like

may me might mine more most much must my myself

need no nor not now

of off ok okay on once one only or other our ours out over own

please pls

really regards

same shall she should shouldn so some someone something still such sure

tell than thank thanks thankyou thanx that thats the their theirs them then there theres these
they this those through thx to too

under until up upon us

very

want wanna was wasn we well were weren what whats when where which while who whom whose why will
with won wont would wouldn

yeah yes yet you youd youll your youre yours yourself

good morning afternoon evening night day today tomorrow tonight
""".split())

# Words that only announce a fact or a time ("telefonul meu e …", "joi la 10"): not subjects.
NOT_TOPICS = frozenset("""
numesc cheama nume numele prenume prenumele telefon telefonul telefonului mobil mobilul numar numarul
numere nr adresa adresei adresamea email emailul mail mailul sunati sunat suna stau locuiesc
phone number numbers address name named called call live scrieti trimiteti contactati see

luni lunea marti martea miercuri miercurea joi joia vineri vinerea sambata duminica saptamana
monday tuesday wednesday thursday friday saturday sunday week weekend
ianuarie februarie martie aprilie iunie iulie august septembrie octombrie noiembrie decembrie
january february march april june july september october november december
dimineata dupa amiaza pranz poimaine astazi diseara jumatate sfert noon midday tonight
""".split())
STOP_WORDS = STOP_RO | STOP_EN | NOT_TOPICS

def fold_text(text: str) -> str:
    """Lower case with Romanian diacritics (and other accents) folded to ASCII."""
    lowered = text.lower().translate(_FOLD)
    if lowered.isascii():
        return lowered
    return "".join(c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c))
