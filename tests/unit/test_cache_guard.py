"""The semantic-cache guard: rephrasings pass, questions that need another answer are refused, with the reason."""

import pytest

from tokenfleet.cache.guard import check, compare, features

SAME = [
    ("What is the capital of France?", "What's the capital city of France?"),
    ("what is the capital of france", "What is the capital of France?"),
    ("How do I sort a list in Python?", "How can I sort a Python list?"),
    ("Why doesn't my code compile?", "Why does my code not compile?"),
    ("I have 2 cats", "I have two cats"),
    ("twenty five apples", "25 apples"),
    ("two hundred and five pages", "205 pages"),
    ("What's 1,000 divided by 8?", "What is 1000 divided by 8?"),
    ("Paris to London flights", "flights from Paris to London"),
    ("Convert 100 dollars to euros", "How much is $100 in euros?"),
    ("Translate 'hello' into French", "How do I say hello in French?"),
    ("HOW DO I RESET MY ROUTER", "how do i reset my router"),
    ("How to reset a Netgear router", "how do i reset my netgear router"),
    ("Tell me why the sky is blue", "Why is the sky blue?"),
    ("Explain recursion in simple terms", "Explain recursion simply"),
    ("How long should I boil an egg?", "How long to boil an egg"),
]

DIFFERENT = [
    # (query, cached question, reason)
    ("What is the capital of France?", "What is the capital of Germany?", "entity"),
    ("what is the capital of france", "what is the capital of germany", "entity"),
    ("What is the population of Tokyo?", "What is the population of Osaka?", "entity"),
    ("Who wrote Hamlet?", "Who wrote Macbeth?", "entity"),
    ("Is GPT-4o cheaper?", "Is GPT-4 cheaper?", "entity"),
    ("How many calories are in 2 bananas?", "How many calories are in 3 bananas?", "number"),
    ("What is 15% of 200?", "What is 20% of 200?", "number"),
    ("When did World War 2 end?", "When did World War 1 end?", "number"),
    ("Meeting at 10:30", "Meeting at 10:45", "number"),
    ("What is 5 million divided by 2?", "What is 5 divided by 2?", "number"),
    ("Boil water at 100 °C", "Boil water at 100 °F", "unit"),
    ("How far is 5 km?", "How far is 5 miles?", "unit"),
    ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?", "negation"),
    ("Why does my code compile?", "Why doesn't my code compile?", "negation"),
    ("Being against it does not mean not wanting it", "Being against it means not wanting it", "negation"),
    ("Book a flight from Paris to London", "Book a flight from London to Paris", "direction"),
    ("Convert 5 km to miles", "Convert 5 miles to km", "direction"),
    ("Convert 100 dollars to euros", "Convert 100 euros to dollars", "direction"),
    ("How many km in a mile?", "How many miles in a km?", "direction"),
    ("Is Paris bigger than London?", "Is London bigger than Paris?", "direction"),
    ("Count from 5 to 10", "Count from 10 to 5", "direction"),
    ("How do I upload a file?", "How do I download a file?", "opposite"),
    ("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?", "opposite"),
    ("Then the captain was gone.", "Then the captain came back.", "opposite"),
    ("Sort the list in ascending order", "Sort the list in descending order", "opposite"),
    ("When was Einstein born?", "Where was Einstein born?", "question"),
    ("How many people live in Paris?", "How old is Paris?", "question"),
    ("Is Python slow?", "Python is slow.", "mood"),
    ("What is the capital of France?", "¿Cuál es la capital de Francia?", "language"),
    ("Quelle est la capitale de la France ?", "What is the capital of France?", "language"),
    ("What is the capital of France?", "Какая столица Франции?", "language"),
    ("東京の人口は？", "What is the population of Tokyo?", "language"),
]


@pytest.mark.parametrize(("query", "cached"), SAME)
def test_rephrasings_pass_the_guard_both_ways(query, cached):
    assert check(query, cached) is None
    assert check(cached, query) is None


@pytest.mark.parametrize(("query", "cached", "reason"), DIFFERENT)
def test_a_question_that_needs_another_answer_is_refused_with_its_reason(query, cached, reason):
    assert check(query, cached) == reason
    assert check(cached, query) == reason


@pytest.mark.parametrize(("text", "numbers"), [
    ("I have 2 cats and three dogs", (2.0, 3.0)),
    ("twenty five", (25.0,)),
    ("5k users", (5000.0,)),
    ("1,000,000 rows", (1e6,)),
    ("version 3.11", (3.11,)),
    ("which one is better", ()),  # "one" is a pronoun here, not a quantity
])
def test_numbers_are_read_in_digits_and_words(text, numbers):
    assert features(text).numbers == numbers


def test_names_are_found_by_capital_letters_mid_sentence_and_by_a_list_in_lower_case():
    assert {"netgear"} <= features("how do I reset my Netgear router").entities
    assert {"germany"} <= features("capital of germany").entities
    assert not features("The router is slow. It drops packets.").entities  # sentence starts are not names


def test_compare_of_a_text_with_itself_finds_nothing_for_any_kind_of_text():
    for text, _, _ in DIFFERENT:
        assert compare(features(text), features(text)) is None
