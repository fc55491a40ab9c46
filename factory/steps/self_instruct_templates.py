"""Every prompt the Self-Instruct step sends, in one place (recipes override them by name).

The shapes follow the paper's appendix (Wang et al. 2022, Tables 5-8): a numbered "Task N:" list
the model continues; a few-shot yes/no question for "is this a classification task?"; and two
instance prompts — input-first for open tasks, output-first (class label, then an input for it)
for classification tasks, so the labels do not all collapse onto one class. The few-shot examples
are written for this project.

Placeholders: ``instructions`` {tasks} (the numbered examples) and {next} (the number the model
continues from); ``is_classification``, ``instances_input_first``, ``instances_output_first``:
{instruction}.
"""

from __future__ import annotations

INSTRUCTIONS = """Come up with a series of tasks:

{tasks}
Task {next}:"""

IS_CLASSIFICATION = """Can the following task be regarded as a classification task with finite output labels?

Task: Given a sentence from a product review, say whether it is positive, negative or neutral.
Is it classification? Yes

Task: Write a short thank-you note to a neighbour who watered your plants.
Is it classification? No

Task: Tell whether the number is prime.
Is it classification? Yes

Task: Summarize the paragraph in one sentence.
Is it classification? No

Task: Which of the two words is a synonym of "rapid": sluggish or swift?
Is it classification? Yes

Task: Suggest three names for a bakery that sells only bread.
Is it classification? No

Task: Decide if the email is spam or not spam.
Is it classification? Yes

Task: Explain how a bicycle's gears make climbing easier.
Is it classification? No

Task: Identify the language of the sentence: English, French, Spanish or German.
Is it classification? Yes

Task: Convert the temperature from Celsius to Fahrenheit.
Is it classification? No

Task: {instruction}
Is it classification?"""

INSTANCES_INPUT_FIRST = """Come up with examples for the following tasks. Give several examples when you can. If a task needs no extra input, write the output directly.

Task: Sort the numbers from smallest to largest.
Example 1
Input: 7, 2, 9, 4
Output: 2, 4, 7, 9
Example 2
Input: 15, -3, 0
Output: -3, 0, 15

Task: Suggest a name for a cat that loves to sleep in boxes.
Output: Parcel

Task: Rewrite the sentence in the past tense.
Example 1
Input: She walks to the market and buys apples.
Output: She walked to the market and bought apples.
Example 2
Input: They play chess after dinner.
Output: They played chess after dinner.

Task: Give two tips for staying focused while studying.
Output: Put your phone in another room, and study in short blocks with a five-minute break between them.

Task: {instruction}
"""

INSTANCES_OUTPUT_FIRST = """Given the classification task and its class labels, write an input that belongs to each class label. If the task needs no input, just list the possible class labels.

Task: Decide whether the review is positive or negative.
Class label: Positive
Input: The soup was hot, the bread was fresh and the staff were lovely.
Class label: Negative
Input: We waited an hour and the order was still wrong.

Task: Tell whether the number is even or odd.
Class label: Even
Input: 148
Class label: Odd
Input: 33

Task: Which planet is larger, Mars or Jupiter?
Class label: Jupiter

Task: Is the sentence a question or a statement?
Class label: Question
Input: Did you lock the back door?
Class label: Statement
Input: The train leaves at noon.

Task: {instruction}
"""

TEMPLATES: dict[str, str] = {
    "instructions": INSTRUCTIONS,
    "is_classification": IS_CLASSIFICATION,
    "instances_input_first": INSTANCES_INPUT_FIRST,
    "instances_output_first": INSTANCES_OUTPUT_FIRST,
}

# The placeholders each template may use (an override using another is a recipe error).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "instructions": ("tasks", "next"),
    "is_classification": ("instruction",),
    "instances_input_first": ("instruction",),
    "instances_output_first": ("instruction",),
}

# Words that mark a task a text-only model cannot do (the paper's list, with Alpaca's additions).
BLOCKED_WORDS = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map",
                 "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
