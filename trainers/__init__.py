"""Layer 3 (beside ``filters``), ``trainers``: LoRA SFT, DPO, reward and GRPO on TRL + PEFT, trained
straight off factory datasets. Imports only ``factory.core`` and ``factory.llm``.

Contract: one config dataclass per method with ``help`` on every field (``config``); one top-to-bottom
``train_<method>(config, dataset) -> TrainResult`` per method (``sft``, ``dpo``, ``reward``,
``grpo``), each with one ``Method`` object beside it (``method``: config, train function, the data
formats of ``factory.core.dataset_files`` it reads and how it shapes rows, what capacity counts;
the four in ``methods.METHODS``), each refusing to start when the capacity check says the data
does not fit the adapter (``capacity``, ``check``), with rank, learning rate and epochs chosen by
``doctrine`` unless set.
"""
