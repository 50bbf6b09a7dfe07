#!/usr/bin/env python3
"""Writes the quickstart's data (committed; rerun to regenerate the same files):
    train.jsonl   chat lines: a question about a country's capital, answered in a fixed JSON
                  format, {"country": ..., "capital": ...}, which SmolLM2-135M-Instruct does not
                  use by itself (it answers in a sentence)
    eval.jsonl    the same for countries that are not in train.jsonl
    prompts.txt   held-out questions for the before/after generations
"""
import json
import os
import random

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Austria", "Vienna"), ("Switzerland", "Bern"),
    ("Poland", "Warsaw"), ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"), ("Ireland", "Dublin"), ("Greece", "Athens"), ("Hungary", "Budapest"),
    ("Czech Republic", "Prague"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Croatia", "Zagreb"),
    ("Serbia", "Belgrade"), ("Ukraine", "Kyiv"), ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Egypt", "Cairo"),
    ("Morocco", "Rabat"), ("Kenya", "Nairobi"), ("Nigeria", "Abuja"), ("Ghana", "Accra"), ("Ethiopia", "Addis Ababa"),
    ("South Africa", "Pretoria"), ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"),
    ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"), ("Malaysia", "Kuala Lumpur"), ("Pakistan", "Islamabad"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"), ("Israel", "Jerusalem"), ("Canada", "Ottawa"),
    ("United States", "Washington"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"),
    ("Chile", "Santiago"), ("Peru", "Lima"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Cuba", "Havana"),
    ("Australia", "Canberra"), ("New Zealand", "Wellington"), ("Iceland", "Reykjavik"), ("Estonia", "Tallinn"),
    ("Latvia", "Riga"), ("Lithuania", "Vilnius"), ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"),
    ("Albania", "Tirana"), ("Tunisia", "Tunis"), ("Algeria", "Algiers"), ("Senegal", "Dakar"), ("Nepal", "Kathmandu"),
    ("Mongolia", "Ulaanbaatar"), ("Afghanistan", "Kabul"), ("Qatar", "Doha"), ("Jordan", "Amman"),
    ("Lebanon", "Beirut"), ("Uruguay", "Montevideo"),
]
QUESTIONS = ["What is the capital of {}?", "Which city is the capital of {}?", "Name the capital city of {}.",
             "Tell me the capital of {}."]
HELD_OUT = 15


def line(country, capital, question):
    answer = json.dumps({"country": country, "capital": capital})
    return json.dumps({"messages": [{"role": "user", "content": question.format(country)},
                                    {"role": "assistant", "content": answer}]})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(2026)
    pairs = CAPITALS[:]
    rng.shuffle(pairs)
    held_out, train = pairs[:HELD_OUT], pairs[HELD_OUT:]
    with open(os.path.join(here, "train.jsonl"), "w") as f:
        for country, capital in train:
            for question in rng.sample(QUESTIONS, 2):
                f.write(line(country, capital, question) + "\n")
    with open(os.path.join(here, "eval.jsonl"), "w") as f:
        for country, capital in held_out:
            f.write(line(country, capital, rng.choice(QUESTIONS)) + "\n")
    with open(os.path.join(here, "prompts.txt"), "w") as f:
        for country, _ in held_out[:3]:
            f.write(QUESTIONS[0].format(country) + "\n")


if __name__ == "__main__":
    main()
