"""Reader tests share one short text about North Korea–Vietnam relations."""

TEXT = (
    "North Korea and North Vietnam established formal diplomatic relations on January 31, 1950. "
    "In July 1957, President Ho Chi Minh visited Pyongyang. "
    "In 1968, approximately 2,000 Vietnamese students received education in Korea. "
    "Relations declined in the 1990s due to investment and trade disputes. "
    "The summit was held in Hanoi in February 2019."
)
