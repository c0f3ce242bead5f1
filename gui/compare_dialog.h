#pragma once
// CompareDialog: 2-4 trials side by side, one column per trial, one row per
// figure and per config field; a row whose cells differ is highlighted so the
// knobs that set the trials apart stand out.
#include <QDialog>

#include <vector>

class QTableWidget;

namespace memfront {

class TrialStore;

class CompareDialog : public QDialog {
  Q_OBJECT
 public:
  CompareDialog(const TrialStore& store, std::vector<int> trials, QWidget* parent = nullptr);
  QTableWidget* table() const { return table_; }

 private:
  QTableWidget* table_ = nullptr;
};

}  // namespace memfront
