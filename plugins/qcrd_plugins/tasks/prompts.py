"""Teacher prompts, one per kind of task.  The CQA wording is the paper's (Fig. 3);
the paper publishes no other prompt, so math and NLI follow the same pattern and the
same "<Explanation>: ... <Answer>: ..." reply format.  Every generated rationale set
records the template text and its sha256."""

from qcrd_bench.components import PromptTemplate

_FORMAT = "You must follow the output format: <Explanation>: ... <Answer>: ..."

CHOICE = PromptTemplate(
    system=("You are a question answering robot. I will provide you with a question and several answer choices. "
            "You need give me the explanation and the answer. The answer must be chosen from choices and the "
            "explanation must be obtained via thinking step by step. You must follow the output format. "
            "Output format: <Explanation>: ... <Answer>: (d) math problem"),
    user="{input}",
)

MATH = PromptTemplate(
    system=("You are a math word problem solving robot. I will provide you with a math word problem. You need "
            "give me the explanation and the answer. The answer must be a single number and the explanation "
            "must be obtained via thinking step by step. " + _FORMAT),
    user="{input}",
)

NLI = PromptTemplate(
    system=("You are a natural language inference robot. I will provide you with a premise and a hypothesis. "
            "You need give me the explanation and the answer. The answer must be one of entailment, neutral "
            "or contradiction, and the explanation must be obtained via thinking step by step. " + _FORMAT),
    user="{input}",
)
