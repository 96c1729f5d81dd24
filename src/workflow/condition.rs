#[derive(Clone, Debug, PartialEq)]
pub struct Condition;
