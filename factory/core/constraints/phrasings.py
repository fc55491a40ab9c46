"""How each constraint type is asked for: several phrasings per type, written here.

A model taught on one wording per type learns the wording, not the rule: with one or two
phrasings per type the IFEval loop's trained model never repeated a request or wrote in lowercase
when IFEval asked in its own words. So each type gets many: plain and casual, imperative and "your
answer should", long and short. None is IFEval's sentence (decontamination drops any train prompt
that shares a 13-word run with an IFEval prompt, and ``tests/test_constraints.py`` checks the
phrasings themselves against it when the data is present).

Keys: type id -> variant (the ``variant_by`` parameter's value, "" when there is one group) ->
``str.format`` templates over the kwargs and the fields of ``spec.view``.
"""

from __future__ import annotations

AT_LEAST, LESS_THAN = "at least", "less than"

PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "keywords:existence": {"": (
        "Mention the word{keywords_s} {keywords} somewhere in your answer.",
        "Make sure your reply uses the word{keywords_s} {keywords}.",
        "Work the word{keywords_s} {keywords} into your response.",
        "Be sure to include the keyword{keywords_s} {keywords} in what you write.",
        "Your answer has to contain the word{keywords_s} {keywords}.",
        "include {keywords} in your reply",
        "The word{keywords_s} {keywords} should appear in your response.",
    )},
    "keywords:frequency": {
        AT_LEAST: (
            "Use the word '{keyword}' at least {times}.",
            "The word '{keyword}' should come up {times} or more in your answer.",
            "Make sure the word '{keyword}' appears at least {times}.",
            "Repeat the word '{keyword}' no fewer than {frequency} times in your reply.",
            "say '{keyword}' at least {times}",
        ),
        LESS_THAN: (
            "Use the word '{keyword}' at most {at_most_times}.",
            "Do not write the word '{keyword}' {times} or more.",
            "The word '{keyword}' should appear fewer than {frequency} times.",
            "Mention '{keyword}' less than {frequency} times in your response.",
            "Don't repeat the word '{keyword}' more than {at_most_times}.",
        ),
    },
    "keywords:forbidden_words": {"": (
        "Do not use the word{forbidden_words_s} {forbidden_words_or}.",
        "Avoid the word{forbidden_words_s} {forbidden_words_or} entirely.",
        "Answer without ever writing {forbidden_words_or}.",
        "Your response must not contain the word{forbidden_words_s} {forbidden_words_or}.",
        "Never use {forbidden_words_or} anywhere in your reply.",
        "Steer clear of the word{forbidden_words_s} {forbidden_words_or}.",
        "don't say {forbidden_words_or}",
    )},
    "keywords:letter_frequency": {
        AT_LEAST: (
            "The letter '{letter}' must appear at least {let_frequency} times in your answer.",
            "Use the letter '{letter}' {let_frequency} times or more.",
        ),
        LESS_THAN: (
            "Use the letter '{letter}' at most {at_most_times} in your answer.",
            "The letter '{letter}' may appear fewer than {let_frequency} times, no more.",
        ),
    },
    "length_constraints:number_words": {
        LESS_THAN: (
            "Answer in fewer than {num_words} words.",
            "Keep your reply under {num_words} words.",
            "Use at most {at_most} words.",
            "Stay below {num_words} words.",
            "Be brief: fewer than {num_words} words in total.",
            "Limit the answer to under {num_words} words.",
            "respond in less than {num_words} words",
        ),
        AT_LEAST: (
            "Write at least {num_words} words.",
            "Your reply should run to {num_words} words or more.",
            "Your answer must be at least {num_words} words long.",
            "Use no fewer than {num_words} words.",
            "Make the response {num_words} words or longer.",
        ),
    },
    "length_constraints:number_sentences": {
        LESS_THAN: (
            "Answer in fewer than {num_sentences} sentences.",
            "Use at most {at_most} sentences.",
            "Your response should have fewer than {num_sentences} sentences.",
            "Keep it to {at_most} sentences or fewer.",
            "respond with less than {num_sentences} sentences",
        ),
        AT_LEAST: (
            "Write at least {num_sentences} sentences.",
            "Your answer needs {num_sentences} or more sentences.",
            "The reply should be at least {num_sentences} sentences long.",
            "Use no fewer than {num_sentences} sentences.",
        ),
    },
    "length_constraints:number_paragraphs": {"": (
        "Write exactly {num_paragraphs} paragraphs and put a line with *** between them.",
        "Split your answer into {num_paragraphs} paragraphs separated by the divider ***.",
        "Use {num_paragraphs} paragraphs in total and separate them with ***.",
        "Your reply needs exactly {num_paragraphs} paragraphs; put *** on its own line between "
        "paragraphs.",
        "Divide the response into {num_paragraphs} paragraphs using the markdown divider *** "
        "as the separator.",
    )},
    "length_constraints:nth_paragraph_first_word": {"": (
        "Write {num_paragraphs} paragraphs separated by blank lines; paragraph {nth_paragraph} "
        "must begin with the word '{first_word}'.",
        "Give {num_paragraphs} paragraphs (a blank line between each), and start paragraph "
        "{nth_paragraph} with '{first_word}'.",
        "Your answer should have {num_paragraphs} paragraphs split by empty lines, and paragraph "
        "number {nth_paragraph} has to open with the word {first_word}.",
        "Use {num_paragraphs} paragraphs with two new lines between them; the first word of "
        "paragraph {nth_paragraph} must be '{first_word}'.",
    )},
    "detectable_content:number_placeholders": {"": (
        "Include at least {num_placeholders} placeholder(s) in square brackets, like [name].",
        "Leave {num_placeholders} or more blanks for the reader as square-bracket placeholders "
        "such as [date].",
        "Use at least {num_placeholders} fill-in placeholder(s) written in square brackets, for "
        "example [city].",
        "Put {num_placeholders} or more bracketed placeholders like [your name] in your reply.",
        "Your answer should have at least {num_placeholders} placeholder(s) in [square brackets].",
    )},
    "detectable_content:postscript": {"": (
        "End with a postscript that starts with {postscript_marker}",
        "Add a note at the very end beginning with {postscript_marker}",
        "Close with a postscript that begins with {postscript_marker}",
        "After your answer, add a short note starting with {postscript_marker}",
        "Finish by adding a postscript, marked {postscript_marker}",
    )},
    "detectable_format:number_bullet_lists": {"": (
        "Answer with exactly {num_bullets} bullet points, each on its own line starting with '* '.",
        "Give your answer as {num_bullets} markdown bullet points (lines starting with '- '), "
        "no more and no fewer.",
        "Use exactly {num_bullets} markdown bullet points, for example:\n* first point\n* second point",
        "Reply in {num_bullets} bullet points (put * at the start of each), exactly that many.",
        "Format the answer as exactly {num_bullets} bullets, each line beginning with *.",
    )},
    "detectable_format:constrained_response": {"": (
        "Give your verdict with one of these exact sentences: My answer is yes. / My answer "
        "is no. / My answer is maybe.",
        "Reply using one of these exact phrases: \"My answer is yes.\", \"My answer is no.\" or "
        "\"My answer is maybe.\"",
        "Choose one answer and write it word for word: My answer is yes. / My answer is no. / "
        "My answer is maybe.",
    )},
    "detectable_format:number_highlighted_sections": {"": (
        "Highlight at least {num_highlights} part(s) of your answer with markdown, like *this*.",
        "Mark {num_highlights} or more key phrases in *italics* with asterisks.",
        "Use markdown to emphasise at least {num_highlights} section(s), wrapping each in single "
        "asterisks like *this part*.",
        "Include {num_highlights} or more *highlighted phrases* (text between single asterisks).",
        "Please mark at least {num_highlights} important part(s) with *asterisks*.",
        "highlight {num_highlights} or more key points using *markdown italics*",
    )},
    "detectable_format:multiple_sections": {"": (
        "Organise your answer in {num_sections} sections, each headed '{section_spliter} 1', "
        "'{section_spliter} 2' and so on.",
        "Use {num_sections} numbered sections; begin each with {section_spliter} and its number.",
        "Split the answer into {num_sections} parts, labelled {section_spliter} 1, "
        "{section_spliter} 2, and so on.",
        "Structure your response as {num_sections} sections, each starting with the heading "
        "{section_spliter} followed by its number.",
    )},
    "detectable_format:json_format": {"": (
        "Reply only with valid JSON (a markdown ``` fence around it is fine).",
        "Format your entire answer as a JSON object.",
        "Give the whole response as JSON; a ```json code fence is allowed.",
        "Your entire reply should be one JSON object, with nothing outside it.",
        "output json only",
    )},
    "detectable_format:title": {"": (
        "Give your answer a title wrapped in double angle brackets, like <<my title>>.",
        "Start with a title inside << and >>.",
        "Add a title set between << and >>, for example <<a day at sea>>.",
        "Put a title at the top, enclosed in << >>.",
        "The response needs a title surrounded by double angle brackets (<<like this>>).",
    )},
    "detectable_format:numbered_list": {"": (
        "Answer as a numbered list with exactly {num_items} items (1., 2., ...).",
        "List exactly {num_items} points, numbered 1. to {num_items}.",
    )},
    "combination:two_responses": {"": (
        "Give two different answers, separated by a line of six asterisks: ******",
        "Provide two distinct responses and separate them with six asterisks (******).",
        "Write two versions of your answer; put ****** between them and nowhere else.",
        "I want two different replies, divided by ******.",
    )},
    "combination:repeat_prompt": {"": (
        "Before answering, copy the request above word for word (without this sentence), "
        "then give your answer.",
        "First, say my request again exactly as written (leave out this sentence), then answer it.",
        "Begin by repeating the request above verbatim, not including this instruction, and then "
        "respond.",
        "Start your reply with an exact copy of the request (everything before this sentence), "
        "then give your answer.",
        "Repeat the request word for word first (without this sentence) and only then answer.",
        "Echo the request back exactly, with nothing before it, then write your response.",
    )},
    "startend:end_checker": {"": (
        "Finish your answer with the phrase \"{end_phrase}\" and nothing after it.",
        "The last words of your reply must be \"{end_phrase}\"",
        "Close your answer with the exact words \"{end_phrase}\" and add nothing after them.",
        "Make \"{end_phrase}\" the final phrase of your response.",
        "Your reply must end with \"{end_phrase}\"; nothing may come after it.",
        "wrap up with the phrase \"{end_phrase}\"",
    )},
    "startend:quotation": {"": (
        "Put your whole answer inside double quotation marks.",
        "Wrap the entire reply in double quotes.",
        "Enclose all of it in double quotes.",
        "Your whole reply should start and end with a double quote (\").",
        "Put the full response between double quotes.",
        "Surround everything you write with \"quotation marks\".",
    )},
    "startend:start_phrase": {"": (
        "Begin your answer with the words \"{start_phrase}\".",
        "Your reply must open with \"{start_phrase}\".",
    )},
    "change_case:capital_word_frequency": {
        AT_LEAST: (
            "Write {capital_frequency} or more words in ALL CAPITAL LETTERS.",
            "Stress {capital_frequency} or more words by writing them fully in capitals.",
            "Use {capital_frequency} or more words that are fully capitalised.",
            "Include {capital_frequency} or more words written entirely in CAPITALS.",
        ),
        LESS_THAN: (
            "Write fewer than {capital_frequency} words in all capital letters.",
            "Use at most {at_most} fully capitalised words.",
            "Words written in all capitals should appear fewer than {capital_frequency} times.",
            "Limit words in full uppercase to fewer than {capital_frequency}.",
        ),
    },
    "change_case:lowercase": {"": (
        "Write your whole answer in lowercase letters, with no capitals at all.",
        "Do not use any capital letters.",
    )},
    "change_case:uppercase": {"": (
        "Write your whole answer in capital letters.",
        "Answer entirely in UPPERCASE.",
    )},
    "change_case:english_lowercase": {"": (
        "Answer in English, using lowercase letters only.",
        "Write your entire answer in English and in lowercase; capital letters are not allowed.",
        "Use only lowercase letters in your reply (English, no capitals at all).",
        "Respond in English with no capital letters anywhere.",
        "all of your response should be in lower case english letters",
        "Do not use any capital letters: write the whole response in lowercase English.",
        "Make sure every letter in your answer is lowercase.",
    )},
    "change_case:english_capital": {"": (
        "Answer in English, using capital letters only.",
        "Write your entire response in English, in all capital letters.",
        "Your reply should be in English and entirely in CAPITAL LETTERS.",
        "Use uppercase letters only for the whole answer, in English.",
        "Respond in English, all caps.",
        "Every letter of your answer must be a capital letter (English only).",
    )},
    "punctuation:no_comma": {"": (
        "Do not use any commas in your answer.",
        "Write your reply without a single comma.",
        "Avoid commas completely.",
        "Leave out every comma.",
        "No commas are allowed anywhere in your reply.",
        "Your answer must not contain a single comma.",
        "write it without using any commas",
    )},
    "language:response_language": {"": (
        "Answer only in the language with ISO code '{language}'.",
    )},
}
